"""``/v1/api-keys``: admins mint, list and revoke their tenant's keys."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ..problems import Problem
from ..routes import api_route, limit_param
from ..signed_urls import int_in_range
from ..state import app_state
from ..uploads import read_json_object
from .interfaces import ApiKeyNotFound
from .keys import KeyService
from .principal import ROLES

__all__ = ["routes"]

MAX_EXPIRES_IN = 10 * 365 * 24 * 3600
_FIELDS = ("role", "name", "expires_in")


def _invalid(field: str, detail: str) -> Problem:
    return Problem(422, "invalid_api_key_request", detail, field=field)


async def create_key(request: Request) -> Response:
    body = await read_json_object(request, limit=4096, required=True)
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise _invalid(unknown[0], f"Unknown field {unknown[0]!r}; allowed: {', '.join(_FIELDS)}.")
    role = body.get("role")
    if role not in ROLES:
        raise _invalid("role", f"role must be one of {', '.join(ROLES)}.")
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise _invalid("name", "name must be a string of at most 200 characters.")
    expires_in = body.get("expires_in")
    if expires_in is not None and not int_in_range(expires_in, 1, MAX_EXPIRES_IN):
        raise _invalid(
            "expires_in", f"expires_in must be whole seconds from 1 to {MAX_EXPIRES_IN}."
        )
    state = app_state(request)
    keys: KeyService = state["keys"]
    record, key = await state["offload"](
        keys.create, request.scope["tenant"], str(role), name, expires_in
    )
    return JSONResponse(
        {**record.to_public(), "key": key},
        status_code=201,
        headers={"Location": f"/v1/api-keys/{record.key_id}", "Cache-Control": "no-store"},
    )


async def list_keys(request: Request) -> Response:
    state = app_state(request)
    limit = limit_param(request, "bad_parameter")
    records, next_cursor = await state["offload"](
        state["keys"].store.list_keys,
        request.scope["tenant"],
        limit,
        request.query_params.get("cursor"),
    )
    return JSONResponse(
        {"data": [r.to_public() for r in records], "next_cursor": next_cursor},
        headers={"Cache-Control": "no-store"},
    )


async def revoke_key(request: Request) -> Response:
    state = app_state(request)
    key_id = request.path_params["key_id"]
    try:
        await state["offload"](state["keys"].revoke, key_id, request.scope["tenant"])
    except ApiKeyNotFound:
        raise Problem(404, "api_key_not_found", f"No API key {key_id!r}.") from None
    state["auth"].forget(key_id)
    return Response(status_code=204)


routes: list[BaseRoute] = [
    api_route("/v1/api-keys", GET=list_keys, POST=create_key),
    api_route("/v1/api-keys/{key_id}", DELETE=revoke_key),
]
