"""The /v1/jobs resource."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import anyio

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..conditional import json_response, none_match, not_modified, parse_range
from ..jobs.interfaces import JOB_STATUSES
from ..jobs.service import JobService
from ..options import parse_flag, parse_options
from ..problems import Problem
from ..state import app_state
from ..uploads import read_multipart
from . import api_route, choice_param, limit_param

__all__ = ["job_results", "routes"]


def _jobs(request: Request) -> JobService:
    return app_state(request)["jobs"]


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
        raise Problem(
            400, "bad_idempotency_key", "Idempotency-Key must be 1-255 printable characters."
        )
    return key


def _callback_url(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(raw) > 2048:
        raise Problem(
            400,
            "bad_parameter",
            "callback_url must be an absolute http(s) URL of at most 2048 characters.",
            parameter="callback_url",
        )
    return raw


async def create_job(request: Request) -> Response:
    state = app_state(request)
    service, settings = state["jobs"], state["runtime"].settings
    upload = await service.begin(request.scope["tenant"], _idempotency_key(request))
    try:
        parsed = await read_multipart(
            request,
            limit=settings.max_request_bytes,
            new_sink=lambda seq, kind: service.sink(upload, seq),
            sniff=service.engine.sniff,
            max_files=settings.max_images_per_job,
            accept_archives=True,
            offload=state["offload"],
        )
        if upload.replay is not None:
            created = await service.replay(upload, parsed.fingerprint)
        else:
            options = parse_options(
                parsed.fields,
                max_colors=settings.max_colors,
                default_pixel_budget=settings.pixel_budget,
            )
            if parse_flag(parsed.fields, "analyze"):
                # Kept with the job's options (only when asked, so other jobs read as before).
                options["analyze"] = True
            callback_url = _callback_url(parsed.fields.get("callback_url"))
            created = await service.submit(
                upload, parsed.files, options, callback_url, parsed.fingerprint
            )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await service.abort(upload)
        raise
    headers = {"Location": created.location, **service.retry_after}
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(request, created.body, status_code=created.status_code, headers=headers)


async def get_job(request: Request) -> Response:
    service = _jobs(request)
    job = await service.get(request.path_params["job_id"], request.scope["tenant"])
    headers = {"Cache-Control": "no-cache"}
    if job.is_active:
        headers.update(service.retry_after)
    return json_response(request, job.to_public(), headers=headers)


async def list_jobs(request: Request) -> Response:
    service = _jobs(request)
    q = request.query_params
    status = choice_param(request, "status", JOB_STATUSES, "bad_parameter")
    jobs, next_cursor = await service.list(
        request.scope["tenant"],
        status=status,
        limit=limit_param(request, "bad_parameter"),
        cursor=q.get("cursor"),
    )
    headers = {"Cache-Control": "no-cache"}
    next_url = None
    if next_cursor is not None:
        params = {k: v for k, v in {"status": status, "limit": q.get("limit")}.items() if v}
        params["cursor"] = next_cursor
        next_url = f"/v1/jobs?{urlencode(params)}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    body = {"jobs": [j.to_public() for j in jobs], "next_cursor": next_cursor, "next": next_url}
    return json_response(request, body, headers=headers)


async def job_results(request: Request) -> Response:
    service = _jobs(request)
    job = await service.get(request.path_params["job_id"], request.scope["tenant"])
    key, etag, size = service.finished_result(job)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0",
    }
    if none_match(request, etag):
        return not_modified(etag, {"Cache-Control": headers["Cache-Control"]})
    if_range = request.headers.get("if-range")
    wanted = (
        None if if_range is not None and if_range.strip() != etag else request.headers.get("range")
    )
    span = parse_range(wanted, size)
    if span == "unsatisfiable":
        raise Problem(
            416,
            "range_not_satisfiable",
            f"The results are {size} bytes long.",
            size=size,
            headers={"Content-Range": f"bytes */{size}"},
        )
    blobs = service.blobs
    if isinstance(span, tuple):
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        return StreamingResponse(
            blobs.read_range(key, start, end),
            status_code=206,
            media_type="application/json",
            headers=headers,
        )
    headers["Content-Length"] = str(size)
    return StreamingResponse(
        blobs.read_range(key, 0, size - 1), media_type="application/json", headers=headers
    )


async def cancel_job(request: Request) -> Response:
    job = await _jobs(request).cancel(request.path_params["job_id"], request.scope["tenant"])
    status = 200 if job.status == "canceled" else 202
    return json_response(request, job.to_public(), status_code=status)


async def delete_job(request: Request) -> Response:
    await _jobs(request).delete(request.path_params["job_id"], request.scope["tenant"])
    return Response(status_code=204)


routes = [
    api_route("/v1/jobs", GET=list_jobs, POST=create_job),
    api_route("/v1/jobs/{job_id}", GET=get_job, DELETE=delete_job),
    api_route("/v1/jobs/{job_id}/results", GET=job_results),
    api_route("/v1/jobs/{job_id}/cancel", POST=cancel_job),
]
