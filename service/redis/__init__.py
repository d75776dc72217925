"""The distributed backend's Redis half: jobs, dispatch, event log, idempotency keys, palette
cache and shared secrets (``PALETTE_STORE=redis://...`` or ``redis+cluster://...``).

Only ``service.backends`` opens it; everything else sees the Protocols of
``service.jobs.interfaces``.
"""
