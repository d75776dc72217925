"""How the app takes on issue 13's parts: the lifespan objects, the middleware and the routes.

``create_app`` calls :func:`open_guards` in its lifespan, puts :func:`middleware` in its stack
and adds :data:`routes`; nothing else in the app needs to know these parts exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from ..audit import routes as audit_routes
from ..audit.trail import AuditTrail
from ..auth import routes as key_routes
from ..auth.authenticator import Authenticator
from ..auth.keys import PEPPER_SECRET, KeyService
from ..auth.middleware import AuthMiddleware
from ..auth.oidc import OidcVerifier
from ..backends import Backends
from ..metrics import Metrics
from ..offload import Offload
from ..ratelimit.limiter import RateLimiter
from ..ratelimit.saturation import Saturation
from ..settings import Settings
from ..webhooks import api as webhook_routes
from .middleware import BodyTimeoutMiddleware, SecurityHeadersMiddleware, page_policy

__all__ = ["Guards", "middleware", "open_guards", "routes"]

_DOCS_PAGE = Path(__file__).resolve().parent.parent / "apidocs.html"


@dataclass
class Guards:
    auth: Authenticator
    keys: KeyService
    audit: AuditTrail
    limiter: RateLimiter
    saturation: Saturation
    oidc: OidcVerifier | None

    def close(self) -> None:
        self.saturation.stop()
        if self.oidc is not None:
            self.oidc.close()


def open_guards(
    settings: Settings, backends: Backends, metrics: Metrics, offload: Offload
) -> Guards:
    """Blocking (reads secrets from the backend): run it off the event loop."""
    s = settings.security
    pepper = backends.secrets.get_or_create(PEPPER_SECRET, secrets.token_urlsafe).encode()
    oidc = OidcVerifier(s) if s.oidc_enabled else None
    auth = Authenticator(
        settings.api_keys, backends.api_keys, pepper, backends.clock, offload, oidc
    )
    limiter = RateLimiter(s.rate_limits, backends.rate_limits, metrics.rate_limited.inc)

    def tighten(factor: float, reason: str) -> None:
        limiter.factor = factor
        metrics.rate_limit_factor.set(factor)

    saturation = Saturation(
        queued_jobs=lambda: backends.jobs.counts().get("queued", 0),
        queue_limit=s.saturation_queued_jobs,
        cpu_limit=s.saturation_cpu,
        tighten_factor=s.rate_limit_tighten_factor,
        on_change=tighten,
    )
    saturation.start()
    return Guards(
        auth,
        KeyService(backends.api_keys, pepper, backends.clock),
        AuditTrail(backends.audit, backends.clock, offload),
        limiter,
        saturation,
        oidc,
    )


def middleware(settings: Settings, app_routes: Sequence[BaseRoute]) -> list[Middleware]:
    """Security headers outermost (every answer gets them, refusals too), then the gate, then
    the body-read deadline around the routes."""
    s = settings.security
    return [
        Middleware(
            SecurityHeadersMiddleware,
            hsts_seconds=s.hsts_seconds,
            docs_policy=page_policy(_DOCS_PAGE),
        ),
        Middleware(AuthMiddleware, routes=list(app_routes)),
        Middleware(BodyTimeoutMiddleware, seconds=s.body_timeout_seconds),
    ]


routes: list[BaseRoute] = [
    *key_routes.routes,
    *audit_routes.routes,
    *webhook_routes.callback_secret_routes,
]
