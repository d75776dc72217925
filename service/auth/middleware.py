"""The gate every request passes (pure ASGI): who is calling, may they, how often, and the record.

1. The route is found from the app's route list and its row read from the policy table
   (``policy.py``); a route without a row is denied.
2. The caller is authenticated (``authenticator.py``); public rows skip this, signed-URL rows
   carry their own credential.
3. The client's rate limit is counted (``service.ratelimit``): by key or token subject, or by
   address for open access, signed links and failed authentication (so guessing keys is
   limited too). Health, readiness, metrics and docs are exempt.
4. The role must hold the row's permission (403 otherwise; another tenant's objects are 404
   further in, because the stores only see the caller's tenant).
5. Audited rows, refusals and failed authentication are written to the audit log.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..problems import Problem, problem_response
from ..ratelimit.limiter import Decision
from .authenticator import PUBLIC_TENANT, AuthFailure
from .policy import Rule, rule_for
from .principal import PERMISSIONS, ROLES, Principal

__all__ = ["AuthMiddleware", "credential_of"]

log = logging.getLogger("service.auth")

_VARY = (b"vary", b"Authorization, X-API-Key")
_ANY_CALLER = Rule("read")  # what unknown /v1 paths and wrong methods need: any credential


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def credential_of(scope: Scope) -> str | None:
    key = _header(scope, b"x-api-key")
    if key is not None:
        return key.strip()
    auth = _header(scope, b"authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
    return None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = [r for r in routes if isinstance(r, Route)]

    def _match(self, scope: Scope) -> tuple[Route | None, dict[str, Any]]:
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return route, child.get("path_params", {})
        return None, {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, params = self._match(scope)
        method = scope["method"]
        if route is None:
            if not scope["path"].startswith("/v1/"):
                await self.app(scope, receive, send)  # the web UI
                return
            rule: Rule | None = _ANY_CALLER
        elif method not in getattr(route.endpoint, "allowed_methods", ()):
            rule = _ANY_CALLER  # the route answers 405 with its Allow list
        else:
            rule = rule_for(route.path, method)
        if rule is not None and rule.need == "public":
            await self.app(scope, receive, send)
            return
        gate = _Gate(scope, receive, send, route, params)
        await gate.run(self.app, rule)


class _Gate:
    """One request's passage; holds what the steps share."""

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route | None,
        params: dict[str, Any],
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.route = route
        self.params = params
        state = scope.get("state") or {}
        self.auth = state["auth"]
        self.limiter = state["limiter"]
        self.audit = state["audit"]
        client = scope.get("client")
        self.client = str(client[0]) if client else "unknown"
        request_id = scope.get("request_id")
        self.request_id = request_id if isinstance(request_id, str) else ""
        self.decision: Decision | None = None

    @property
    def target(self) -> str:
        return "/".join(f"{k}={v}" for k, v in self.params.items()) or self.scope["path"]

    async def run(self, app: ASGIApp, rule: Rule | None) -> None:
        if rule is None:
            # A route nobody has given a row in the policy table: closed until someone does.
            log.error("no policy for %s %s: denied", self.scope["method"], self.route_path)
            await self._refuse(
                Problem(403, "not_permitted", "This operation is not open to any role."),
                "policy.unmapped",
                tenant="",
                actor="",
            )
            return
        if rule.need == "signed":
            if await self._over_limit("ip:" + self.client):
                return
            await self._forward(app, rule, "signed_url", None)
            return
        try:
            principal: Principal = await self.auth.authenticate(
                credential_of(self.scope), self.client
            )
        except AuthFailure as failure:
            if await self._over_limit("ip:" + self.client):
                return
            problem = Problem(
                401,
                failure.code,
                failure.detail,
                headers={"WWW-Authenticate": 'Bearer realm="palette"'},
            )
            await self._refuse(problem, "auth.failure", tenant="", actor="unauthenticated")
            return
        if await self._over_limit(principal.rate_key):
            return
        if not principal.may(rule.need):
            needed = next(r for r in ROLES if rule.need in PERMISSIONS[r])
            problem = Problem(
                403,
                "forbidden",
                f"This needs the {needed} role"
                + (
                    f"; the credential has {principal.role}."
                    if principal.role
                    else "; the credential holds no role this service knows."
                ),
                required_role=needed,
            )
            await self._refuse(problem, "auth.denied", principal.tenant, principal.actor)
            return
        self.scope["tenant"] = principal.tenant
        self.scope["principal"] = principal
        await self._forward(app, rule, principal.actor, principal)

    @property
    def route_path(self) -> str:
        return self.route.path if self.route is not None else self.scope["path"]

    async def _over_limit(self, client: str) -> bool:
        limiter = self.limiter
        if not limiter.enabled:
            return False
        self.decision = decision = limiter.hit(client)
        if decision.allowed:
            return False
        limiter.refused()
        problem = Problem(
            429,
            "rate_limited",
            f"Too many requests; retry in {decision.retry_after} s.",
            retry_after_seconds=decision.retry_after,
            headers={"Retry-After": str(decision.retry_after)},
        )
        await self._answer(problem)
        return True

    def _headers(self) -> list[tuple[bytes, bytes]]:
        if self.decision is None:
            return []
        return [
            (b"ratelimit-policy", self.decision.policy.encode()),
            (b"ratelimit", self.decision.state.encode()),
        ]

    async def _answer(self, problem: Problem) -> None:
        response = problem_response(problem, self.request_id or None)
        response.raw_headers.extend([*self._headers(), _VARY])
        await response(self.scope, self.receive, self.send)

    async def _refuse(self, problem: Problem, action: str, tenant: str, actor: str) -> None:
        # Recorded before the answer: a client that reads the audit log next finds the entry.
        await self.audit.record(
            actor=actor,
            tenant=tenant,
            action=action,
            target=f"{self.scope['method']} {self.scope['path']}",
            outcome=f"denied {problem.status} {problem.code}",
            request_id=self.request_id,
            client=self.client,
        )
        await self._answer(problem)

    async def _forward(
        self, app: ASGIApp, rule: Rule, actor: str, principal: Principal | None
    ) -> None:
        extra = [*self._headers(), _VARY]
        status = 500
        location = ""
        recorded = rule.audit is None

        async def record() -> None:
            nonlocal recorded
            recorded = True
            tenant = self.scope.get("tenant")
            await self.audit.record(
                actor=actor,
                tenant=tenant if isinstance(tenant, str) else PUBLIC_TENANT,
                action=str(rule.audit),
                target=location.rsplit("/", 1)[-1] if location and status < 300 else self.target,
                outcome=("allowed" if status < 400 else "failed") + f" {status}",
                request_id=self.request_id,
                client=self.client,
            )

        async def send_with_headers(message: Message) -> None:
            nonlocal status, location
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                location = next((v.decode("latin-1") for k, v in headers if k == b"location"), "")
                message = {**message, "headers": [*headers, *extra]}
            elif not recorded and not message.get("more_body", False):
                # Before the answer's last bytes: a client that has its answer and reads the
                # audit log next finds the entry, in the order its requests were made.
                await record()
            await self.send(message)

        try:
            await app(self.scope, self.receive, send_with_headers)
        finally:
            if not recorded:  # the app failed before it finished an answer
                await record()
