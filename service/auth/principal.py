"""The caller of a request, once authenticated, and the roles it can hold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["PERMISSIONS", "ROLES", "Principal", "highest_role"]

Role = Literal["viewer", "member", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "member", "admin")
"""Weakest first; each role holds every permission of the ones before it."""

PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "member": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}
"""read: jobs, results, palettes · write: create, cancel and delete jobs, compute palettes,
mint download links · admin: API keys, webhook endpoints and messages, the audit log."""


@dataclass(frozen=True)
class Principal:
    tenant: str
    role: str | None
    """None: authenticated, but holding no role this service knows (everything is 403)."""
    actor: str
    """Who, for the audit log: ``api_key:<id>``, ``oidc:<subject>``, ``legacy:<hash>``,
    ``anonymous`` (open mode)."""
    rate_key: str
    """What rate limits count by."""

    def may(self, permission: str) -> bool:
        return self.role is not None and permission in PERMISSIONS.get(self.role, ())


def highest_role(names: Iterable[object]) -> Role | None:
    """The strongest role this service knows among ``names`` (unknown names are ignored)."""
    known = [ROLES.index(n) for n in names if isinstance(n, str) and n in ROLES]
    return ROLES[max(known)] if known else None
