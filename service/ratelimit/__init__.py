"""Per-client rate limits with IETF RateLimit headers, tightened while the service is saturated.

``limiter.py`` counts (the ``limits`` package, moving windows, in the storage the backend
gives: memory when embedded, a shared store when distributed); ``saturation.py`` decides when
to tighten; ``middleware.py`` applies both to every request but the exempt ones.
"""
