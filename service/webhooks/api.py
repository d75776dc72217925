"""HTTP routes for webhook endpoints and messages (thin: parse, call the store, render)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ..backends import callback_master
from ..conditional import if_match, none_match
from ..egress import EgressRefused
from ..offload import Offload
from ..problems import Problem
from ..routes import api_route, choice_param, limit_param
from ..signed_urls import int_in_range
from ..state import app_state
from ..uploads import read_json_object
from . import WebhookSystem
from .events import JOB_EVENTS
from .interfaces import Conflict, NotFound, PreconditionFailed
from .signing import tenant_secret

T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024
EVENT_TYPE_CHOICES = ("*", *JOB_EVENTS)
MESSAGE_STATUSES = ("pending", "succeeded", "failed")
MAX_BATCH_EVENTS = 1000
MAX_BATCH_WAIT_MS = 600_000
ENDPOINT_FIELDS = (
    "url",
    "description",
    "event_types",
    "disabled",
    "disabled_reason",
    "batch",
    "metadata",
)


def system_of(request: Request) -> WebhookSystem:
    return app_state(request)["webhooks"]


async def call(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a store call off the event loop; its NotFound / PreconditionFailed / Conflict become
    the problem documents the API promises."""
    offload: Offload = app_state(request)["offload"]
    try:
        return await offload(fn, *args)
    except NotFound as exc:
        raise Problem(404, "not_found", str(exc)) from exc
    except PreconditionFailed as exc:
        raise Problem(
            412,
            "precondition_failed",
            "If-Match does not match the endpoint's ETag.",
            headers={"ETag": exc.current_etag},
        ) from exc
    except Conflict as exc:
        raise Problem(409, "message_in_flight", str(exc)) from exc


def tenant_of(request: Request) -> str:
    """The caller's tenant as the service's auth layer recorded it (``public`` when open)."""
    for source in (request.scope, request.scope.get("state") or {}):
        value = source.get("tenant") if isinstance(source, dict) else None
        if isinstance(value, str) and value:
            return value
    return "public"


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


async def _read_json(request: Request, *, required: bool = True) -> dict[str, Any]:
    return await read_json_object(request, limit=MAX_BODY_BYTES, required=required)


def _invalid(field: str, detail: str) -> Problem:
    return Problem(422, "invalid_webhook_endpoint", detail, field=field)


def validate_endpoint_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    unknown = sorted(set(body) - set(ENDPOINT_FIELDS))
    if unknown:
        raise _invalid(
            unknown[0], f"Unknown field {unknown[0]!r}; allowed: {', '.join(ENDPOINT_FIELDS)}."
        )
    out: dict[str, Any] = {}
    if "url" in body or creating:
        url = body.get("url")
        if not isinstance(url, str) or not url or len(url) > 2048:
            raise _invalid("url", "url must be an http(s) URL of at most 2048 characters.")
        out["url"] = url
    if "description" in body:
        desc = body["description"]
        if not isinstance(desc, str) or len(desc) > 500:
            raise _invalid("description", "description must be a string of at most 500 characters.")
        out["description"] = desc
    if "event_types" in body or creating:
        types = body.get("event_types", ["*"])
        if (
            not isinstance(types, list)
            or not types
            or any(t not in EVENT_TYPE_CHOICES for t in types)
        ):
            raise _invalid(
                "event_types",
                f"event_types must be a non-empty list of {', '.join(EVENT_TYPE_CHOICES)} "
                "('*' is every event except the opt-in job.progress).",
            )
        out["event_types"] = sorted(set(types))
    reason = body.get("disabled_reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise _invalid("disabled_reason", "disabled_reason must be a string (max 500).")
    if "disabled" in body:
        if not isinstance(body["disabled"], bool):
            raise _invalid("disabled", "disabled must be true or false.")
        out["disabled"] = body["disabled"]
        out["disabled_reason"] = reason or ("disabled by the owner" if body["disabled"] else None)
    if "batch" in body:
        batch = body["batch"]
        if batch is None:
            out["batch"] = None
        else:
            if not isinstance(batch, dict) or set(batch) - {"max_events", "max_wait_ms"}:
                raise _invalid("batch", "batch must be null or {max_events, max_wait_ms}.")
            max_events = batch.get("max_events", 100)
            max_wait = batch.get("max_wait_ms", 1000)
            if not int_in_range(max_events, 1, MAX_BATCH_EVENTS):
                raise _invalid(
                    "batch.max_events",
                    f"batch.max_events must be an integer from 1 to {MAX_BATCH_EVENTS}.",
                )
            if not int_in_range(max_wait, 0, MAX_BATCH_WAIT_MS):
                raise _invalid(
                    "batch.max_wait_ms",
                    f"batch.max_wait_ms must be an integer from 0 to {MAX_BATCH_WAIT_MS}.",
                )
            out["batch"] = {"max_events": max_events, "max_wait_ms": max_wait}
    if "metadata" in body:
        meta = body["metadata"]
        if (
            not isinstance(meta, dict)
            or len(meta) > 50
            or any(
                not isinstance(k, str) or not isinstance(v, str) or len(k) > 100 or len(v) > 1000
                for k, v in meta.items()
            )
        ):
            raise _invalid("metadata", "metadata must map at most 50 strings to strings.")
        out["metadata"] = meta
    return out


async def vet_url(request: Request, url: str) -> None:
    """The creation-time SSRF check (DNS runs in a thread: it blocks)."""
    try:
        await app_state(request)["offload"](system_of(request).settings.egress.vet_url, url)
    except EgressRefused as exc:
        raise Problem(422, exc.code, exc.detail, field="url") from exc


def _endpoint_headers(endpoint: dict[str, Any]) -> dict[str, str]:
    return {"ETag": endpoint["etag"], "Cache-Control": "no-cache"}


def _public(endpoint: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in endpoint.items() if k != "etag"}


async def create_endpoint(request: Request) -> Response:
    system = system_of(request)
    fields = validate_endpoint_fields(await _read_json(request), creating=True)
    await vet_url(request, fields["url"])
    endpoint, secret = await call(
        request, system.endpoints.create_endpoint, tenant_of(request), fields
    )
    body = {**_public(endpoint), "secret": secret}
    headers = {**_endpoint_headers(endpoint), "Location": f"/v1/webhook-endpoints/{endpoint['id']}"}
    return _json_response(body, 201, headers)


async def list_endpoints(request: Request) -> Response:
    system = system_of(request)
    limit = limit_param(request, "invalid_parameter")
    after = request.query_params.get("cursor") or None
    rows, next_cursor = await call(
        request, system.endpoints.list_endpoints, tenant_of(request), limit, after
    )
    return _json_response({"data": [_public(r) for r in rows], "next_cursor": next_cursor})


async def get_endpoint(request: Request) -> Response:
    system = system_of(request)
    endpoint = await call(
        request, system.endpoints.get_endpoint, request.path_params["endpoint_id"], tenant_of(request)
    )
    if none_match(request, endpoint["etag"]):
        return Response(status_code=304, headers=_endpoint_headers(endpoint))
    return _json_response(_public(endpoint), headers=_endpoint_headers(endpoint))


async def update_endpoint(request: Request) -> Response:
    system = system_of(request)
    changes = validate_endpoint_fields(await _read_json(request), creating=False)
    if "url" in changes:
        await vet_url(request, changes["url"])
    endpoint = await call(
        request,
        system.endpoints.update_endpoint,
        request.path_params["endpoint_id"],
        tenant_of(request),
        changes,
        if_match(request),
    )
    system.wake()
    return _json_response(_public(endpoint), headers=_endpoint_headers(endpoint))


async def delete_endpoint(request: Request) -> Response:
    system = system_of(request)
    await call(
        request,
        system.endpoints.delete_endpoint,
        request.path_params["endpoint_id"],
        tenant_of(request),
        if_match(request),
    )
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    system = system_of(request)
    endpoint, secret = await call(
        request, system.endpoints.rotate_secret, request.path_params["endpoint_id"], tenant_of(request)
    )
    return _json_response(
        {**_public(endpoint), "secret": secret}, headers=_endpoint_headers(endpoint)
    )


async def send_test(request: Request) -> Response:
    system = system_of(request)
    body = await _read_json(request, required=False)
    event_type = body.get("event_type", "job.succeeded")
    if event_type not in JOB_EVENTS:
        raise Problem(
            422,
            "invalid_event_type",
            f"event_type must be one of {', '.join(JOB_EVENTS)}.",
            field="event_type",
        )
    owner = tenant_of(request)
    message_id = await call(
        request, system.outbox.enqueue_test, request.path_params["endpoint_id"], owner, event_type
    )
    message = await call(request, system.outbox.get_message, message_id, owner)
    system.wake()
    return _json_response(message, 202)


def _message_cursor(request: Request) -> tuple[float, str] | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    created, _, message_id = raw.partition("~")
    try:
        return float(created), message_id
    except ValueError as exc:
        raise Problem(
            400, "invalid_parameter", "cursor is not one this service issued.", parameter="cursor"
        ) from exc


async def _list_messages(
    request: Request, endpoint_id: str | None, callbacks_only: bool
) -> Response:
    system = system_of(request)
    status = choice_param(request, "status", MESSAGE_STATUSES, "invalid_parameter")
    limit = limit_param(request, "invalid_parameter")
    owner = tenant_of(request)
    if endpoint_id is not None:
        await call(request, system.endpoints.get_endpoint, endpoint_id, owner)
    cursor = _message_cursor(request)
    rows, after = await call(
        request,
        lambda: system.outbox.list_messages(
            owner,
            endpoint_id=endpoint_id,
            callbacks_only=callbacks_only,
            status=status,
            job_id=request.query_params.get("job_id"),
            limit=limit,
            cursor=cursor,
        )
    )
    next_cursor = None if after is None else f"{after[0]!r}~{after[1]}"
    return _json_response({"data": rows, "next_cursor": next_cursor})


async def list_endpoint_messages(request: Request) -> Response:
    return await _list_messages(request, request.path_params["endpoint_id"], False)


async def list_callback_messages(request: Request) -> Response:
    return await _list_messages(request, None, True)


async def get_message(request: Request) -> Response:
    system = system_of(request)
    message = await call(
        request,
        system.outbox.get_message,
        request.path_params["message_id"],
        tenant_of(request),
        request.path_params.get("endpoint_id"),
    )
    return _json_response(message)


async def resend_message(request: Request) -> Response:
    system = system_of(request)
    message = await call(
        request,
        system.outbox.resend,
        request.path_params["message_id"],
        tenant_of(request),
        request.path_params.get("endpoint_id"),
    )
    system.wake()
    return _json_response(message, 202)


def _time_field(body: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = body.get(name)
    if value is None:
        if required:
            raise Problem(
                422,
                "invalid_recover_window",
                f"{name} is required (RFC 3339 time or epoch seconds).",
                field=name,
            )
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise Problem(
        422,
        "invalid_recover_window",
        f"{name} must be an RFC 3339 time or epoch seconds.",
        field=name,
    )


async def recover(request: Request) -> Response:
    system = system_of(request)
    body = await _read_json(request)
    since = _time_field(body, "since", required=True)
    until = _time_field(body, "until", required=False)
    assert since is not None
    if until is not None and until <= since:
        raise Problem(422, "invalid_recover_window", "until must be after since.", field="until")
    count = await call(
        request, system.outbox.recover, request.path_params["endpoint_id"], tenant_of(request),
        since, until,
    )
    system.wake()
    until_now = until if until is not None else system.clock.now()
    return _json_response({"recovered": count, "since": since, "until": until_now}, 202)


routes: list[BaseRoute] = [
    api_route("/v1/webhook-endpoints", GET=list_endpoints, POST=create_endpoint),
    api_route(
        "/v1/webhook-endpoints/{endpoint_id}",
        GET=get_endpoint,
        PATCH=update_endpoint,
        DELETE=delete_endpoint,
    ),
    api_route("/v1/webhook-endpoints/{endpoint_id}/secret/rotate", POST=rotate_secret),
    api_route("/v1/webhook-endpoints/{endpoint_id}/test", POST=send_test),
    api_route("/v1/webhook-endpoints/{endpoint_id}/recover", POST=recover),
    api_route("/v1/webhook-endpoints/{endpoint_id}/messages", GET=list_endpoint_messages),
    api_route("/v1/webhook-endpoints/{endpoint_id}/messages/{message_id}", GET=get_message),
    api_route(
        "/v1/webhook-endpoints/{endpoint_id}/messages/{message_id}/resend", POST=resend_message
    ),
    api_route("/v1/webhook-messages", GET=list_callback_messages),
    api_route("/v1/webhook-messages/{message_id}", GET=get_message),
    api_route("/v1/webhook-messages/{message_id}/resend", POST=resend_message),
]

__all__ = ["routes", "tenant_of", "validate_endpoint_fields"]


async def callback_secret(request: Request) -> Response:
    """``GET /v1/webhook-callback-secret``: what verifies this tenant's per-job callbacks."""
    state = app_state(request)
    runtime = state["runtime"]
    master = await state["offload"](
        callback_master, runtime.settings, runtime.backends.secrets
    )
    return _json_response(
        {"secret": tenant_secret(master, tenant_of(request))},
        headers={"Cache-Control": "no-store"},
    )


callback_secret_routes: list[BaseRoute] = [
    api_route("/v1/webhook-callback-secret", GET=callback_secret),
]
