from __future__ import annotations

import time

from trainyard.services.webhooks import new_webhook_secret, sign, verify


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The example from the Standard Webhooks specification's reference libraries.
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_accepts_own_signature_and_rejects_tampering() -> None:
    secret = new_webhook_secret()
    now = int(time.time())
    body = b'{"type":"job.succeeded"}'
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, "msg_1", now, body),
    }
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify(new_webhook_secret(), headers, body)
    stale = {
        **headers,
        "webhook-timestamp": str(now - 3600),
        "webhook-signature": sign(secret, "msg_1", now - 3600, body),
    }
    assert not verify(secret, stale, body)
