"""Standard Webhooks signing, checked by the reference ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from service.webhooks.signing import (
    generate_secret,
    new_message_id,
    secret_key,
    signature,
    webhook_headers,
)


def test_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and second.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second
    assert secret_key(first) == base64.b64decode(first.removeprefix("whsec_"))


def test_headers_verify_with_the_reference_package() -> None:
    secret = generate_secret()
    body = b'{"type":"job.succeeded","data":{"job_id":"j1"}}'
    msg_id = new_message_id()
    headers = webhook_headers([secret], msg_id, int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == {
        "type": "job.succeeded",
        "data": {"job_id": "j1"},
    }
    assert headers["webhook-id"] == msg_id


def test_tampered_body_or_wrong_secret_fails_verification() -> None:
    secret = generate_secret()
    body = b'{"a":1}'
    headers = webhook_headers([secret], "msg_1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_rotation_sends_one_signature_per_secret_and_each_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    body = b"{}"
    ts = int(time.time())
    headers = webhook_headers([new, old], "msg_2", ts, body)
    parts = headers["webhook-signature"].split(" ")
    assert len(parts) == 2 and all(p.startswith("v1,") for p in parts)
    assert parts[0] == signature(new, "msg_2", ts, body)
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)


def test_signature_covers_the_timestamp() -> None:
    secret = generate_secret()
    ts = int(time.time())
    headers = webhook_headers([secret], "msg_3", ts, b"{}")
    headers["webhook-timestamp"] = str(ts + 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b"{}", headers)
