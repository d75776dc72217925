"""The embedded backend: every table in one SQLite file in WAL mode (the data directory's
``jobs.sqlite3``). These modules are the only ones in the service that import ``sqlite3``."""
