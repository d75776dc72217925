"""Who is calling and what they may do: API keys, OIDC bearer tokens, roles and the policy table.

``policy.py`` maps every route to the permission it needs (an unmapped route is denied);
``middleware.py`` authenticates each request (``authenticator.py``), checks the policy and
records the caller in ``scope["principal"]`` and ``scope["tenant"]``.
"""
