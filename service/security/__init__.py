"""Who may do what, and what no one can break: the settings and HTTP guards of issue 13.

Authentication and roles live in ``service.auth``, rate limits in ``service.ratelimit``, the
audit log in ``service.audit`` and encryption at rest in ``service.crypto``; this package
holds their one settings object and the connection-level guards (request head limits,
security headers).
"""
