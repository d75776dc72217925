"""The job layer: job store + queue with leases, blob store, workers, retention.

The app and the workers only see the Protocols in :mod:`service.jobs.interfaces`; the embedded
backend (SQLite + local files) lives in :mod:`sqlite_store` and :mod:`blobs`.
"""
