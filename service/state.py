"""The lifespan state every request sees: typed, so routes know what they get."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict, cast

from starlette.requests import Request

if TYPE_CHECKING:
    from .audit.trail import AuditTrail
    from .auth.authenticator import Authenticator
    from .auth.keys import KeyService
    from .jobs.service import JobService
    from .offload import Offload
    from .palettes import PaletteService
    from .ratelimit.limiter import RateLimiter
    from .runtime import Runtime
    from .signed_urls import UrlSigner
    from .webhooks import WebhookSystem

__all__ = ["AppState", "app_state"]


class AppState(TypedDict):
    runtime: Runtime
    offload: Offload
    jobs: JobService
    palettes: PaletteService
    webhooks: WebhookSystem
    signer: UrlSigner
    auth: Authenticator
    keys: KeyService
    audit: AuditTrail
    limiter: RateLimiter


def app_state(request: Request) -> AppState:
    """What the lifespan yielded (Starlette copies it into every request's scope)."""
    return cast(AppState, request.scope["state"])
