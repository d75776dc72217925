"""The policy table: what every route needs, in one place.

Each (route path, method) names the permission it requires (``principal.PERMISSIONS`` says
which role holds which) and, when the act belongs in the audit log, the action recorded.
``HEAD`` follows ``GET``. A route with no row is denied to everyone (403), so a new route is
closed until someone decides who may call it; ``tests/service/test_authorization.py`` builds
its matrix from this table and the app's route list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["POLICY", "Rule", "rule_for"]

Need = Literal["public", "signed", "read", "write", "admin"]


@dataclass(frozen=True)
class Rule:
    need: Need
    """``public``: no credential · ``signed``: the URL is the credential · else a permission."""
    audit: str | None = None
    """The audit log's action name, when the act is recorded."""


_PUBLIC = Rule("public")
_READ = Rule("read")

POLICY: dict[tuple[str, str], Rule] = {
    # Operations: probes, metrics and documentation are open.
    ("/healthz", "GET"): _PUBLIC,
    ("/readyz", "GET"): _PUBLIC,
    ("/metrics", "GET"): _PUBLIC,
    ("/openapi.json", "GET"): _PUBLIC,
    ("/docs", "GET"): _PUBLIC,
    # Palettes
    ("/v1/palette", "POST"): Rule("write"),
    ("/v1/palettes/{digest}", "GET"): _READ,
    ("/v1/analyze", "POST"): Rule("write"),
    ("/v1/search", "GET"): _READ,
    # Jobs
    ("/v1/jobs", "GET"): _READ,
    ("/v1/jobs", "POST"): Rule("write", "job.create"),
    ("/v1/jobs/{job_id}", "GET"): _READ,
    ("/v1/jobs/{job_id}", "DELETE"): Rule("write", "job.delete"),
    ("/v1/jobs/{job_id}/results", "GET"): Rule("read", "job.download"),
    ("/v1/jobs/{job_id}/cancel", "POST"): Rule("write", "job.cancel"),
    ("/v1/jobs/{job_id}/download-url", "POST"): Rule("write", "job.download_url"),
    ("/v1/downloads/jobs/{job_id}/results", "GET"): Rule("signed", "job.download"),
    # Webhooks
    ("/v1/webhook-endpoints", "GET"): Rule("admin", "admin.read"),
    ("/v1/webhook-endpoints", "POST"): Rule("admin", "webhook_endpoint.create"),
    ("/v1/webhook-endpoints/{endpoint_id}", "GET"): Rule("admin", "admin.read"),
    ("/v1/webhook-endpoints/{endpoint_id}", "PATCH"): Rule("admin", "webhook_endpoint.update"),
    ("/v1/webhook-endpoints/{endpoint_id}", "DELETE"): Rule("admin", "webhook_endpoint.delete"),
    ("/v1/webhook-endpoints/{endpoint_id}/secret/rotate", "POST"): Rule(
        "admin", "webhook_endpoint.rotate_secret"
    ),
    ("/v1/webhook-endpoints/{endpoint_id}/test", "POST"): Rule("admin", "webhook_endpoint.test"),
    ("/v1/webhook-endpoints/{endpoint_id}/recover", "POST"): Rule(
        "admin", "webhook_endpoint.recover"
    ),
    ("/v1/webhook-endpoints/{endpoint_id}/messages", "GET"): Rule("admin", "admin.read"),
    ("/v1/webhook-endpoints/{endpoint_id}/messages/{message_id}", "GET"): Rule(
        "admin", "admin.read"
    ),
    ("/v1/webhook-endpoints/{endpoint_id}/messages/{message_id}/resend", "POST"): Rule(
        "admin", "webhook_message.resend"
    ),
    ("/v1/webhook-messages", "GET"): Rule("admin", "admin.read"),
    ("/v1/webhook-messages/{message_id}", "GET"): Rule("admin", "admin.read"),
    ("/v1/webhook-messages/{message_id}/resend", "POST"): Rule("admin", "webhook_message.resend"),
    ("/v1/webhook-callback-secret", "GET"): Rule("admin", "webhook_callback_secret.read"),
    # API keys and the audit log
    ("/v1/api-keys", "GET"): Rule("admin", "admin.read"),
    ("/v1/api-keys", "POST"): Rule("admin", "api_key.create"),
    ("/v1/api-keys/{key_id}", "DELETE"): Rule("admin", "api_key.revoke"),
    ("/v1/audit", "GET"): Rule("admin", "admin.read"),
}


def rule_for(path: str, method: str) -> Rule | None:
    """The row for a route template and method (``HEAD`` as ``GET``); None: denied."""
    return POLICY.get((path, "GET" if method == "HEAD" else method))
