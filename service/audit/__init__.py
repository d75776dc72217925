"""The audit log: every security-relevant act, append-only, in a keyed hash chain.

``interfaces.py`` is the store seam, ``chain.py`` the hash chain (computed by every store in
the append's transaction, checked by ``palette audit verify``), ``trail.py`` what the request
path calls, ``routes.py`` ``GET /v1/audit``.
"""
