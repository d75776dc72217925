"""The distributed backend's Redis half: jobs, dispatch, event log, idempotency keys, palette
cache, shared secrets, API keys, audit log, search index, webhook endpoints and the webhook
outbox (``PALETTE_STORE=redis://...`` or ``redis+cluster://...``).

Only ``service.backends`` opens it; everything else sees the Protocols of
``service.jobs.interfaces``.
"""
