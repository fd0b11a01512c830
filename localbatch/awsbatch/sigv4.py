"""Checking AWS Signature Version 4 on requests to localbatch's TCP listener, with botocore's
own signer: the signature a client sent is compared with the one botocore's ``SigV4Auth``
computes over the same request (method, path, query, the headers the client signed, the body)
with the secret of the access key the client named. Nothing here signs by hand.

``verify`` returns the access key id on success and raises ``SignatureError`` (AWS's code and
message, status 403) for an unsigned request, an unknown key, a signature that does not
match, a scope for another service, a body whose declared hash is not its hash, or a date more
than 15 minutes from ``now`` (AWS's allowed clock skew).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from botocore.auth import SigV4Auth  # type: ignore[import-untyped, unused-ignore]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped, unused-ignore]
from botocore.credentials import Credentials  # type: ignore[import-untyped, unused-ignore]

from localbatch.errors import LocalbatchError

__all__ = ["MAX_SKEW", "SignatureError", "verify"]

MAX_SKEW = timedelta(minutes=15)
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request\s*,\s*SignedHeaders=(?P<headers>[a-z0-9;\-]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class SignatureError(LocalbatchError):
    """A request refused before anything ran: AWS's error ``code`` and ``message`` (HTTP 403)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class _Authorization:
    key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def verify(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret_for: Callable[[str], str | None],
    services: Collection[str],
    now: datetime,
) -> str:
    """The access key id that signed this request; ``SignatureError`` otherwise. ``headers``
    have lower-case names; ``target`` is the raw request target (path and query, as sent)."""
    header = headers.get("authorization")
    if not header:
        raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
    auth = _parse(header)
    secret = secret_for(auth.key)
    if secret is None:
        raise SignatureError("UnrecognizedClientException", "The security token included in the request is invalid.")
    if auth.service not in services:
        expected = " or ".join(f"'{s}'" for s in sorted(services))
        raise SignatureError(
            "InvalidSignatureException", f"Credential should be scoped to correct service: {expected}."
        )
    stamp = headers.get("x-amz-date", "")
    when = _timestamp(stamp)
    if abs(now - when) > MAX_SKEW:
        earliest = (now - MAX_SKEW).strftime(_DATE_FORMAT)
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature expired: {stamp} is now earlier than {earliest} ({now.strftime(_DATE_FORMAT)} - 15 min.)"
            if when < now
            else f"Signature not yet current: {stamp} is still later than {(now + MAX_SKEW).strftime(_DATE_FORMAT)} "
            f"({now.strftime(_DATE_FORMAT)} + 15 min.)",
        )
    if stamp[:8] != auth.date:
        raise SignatureError(
            "InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from X-Amz-Date."
        )
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        raise SignatureError(
            "InvalidSignatureException", "The provided x-amz-content-sha256 header does not match the body."
        )
    missing = [name for name in auth.signed_headers if name not in headers]
    if "host" not in auth.signed_headers or missing:
        raise SignatureError("InvalidSignatureException", "The request's signed headers are missing or incomplete.")
    expected_signature = _signature(method, target, headers, body, auth, secret, stamp)
    if not hmac.compare_digest(expected_signature, auth.signature):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return auth.key


def _parse(header: str) -> _Authorization:
    found = _AUTH.match(header.strip())
    if found is None:
        raise SignatureError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' (AWS4-HMAC-SHA256).",
        )
    return _Authorization(
        key=found["key"],
        date=found["date"],
        region=found["region"],
        service=found["service"],
        signed_headers=tuple(found["headers"].split(";")),
        signature=found["signature"],
    )


def _timestamp(stamp: str) -> datetime:
    try:
        return datetime.strptime(stamp, _DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", "X-Amz-Date must be given as YYYYMMDD'T'HHMMSS'Z'."
        ) from None


def _signature(
    method: str, target: str, headers: Mapping[str, str], body: bytes, auth: _Authorization, secret: str, stamp: str
) -> str:
    """What botocore's signer computes for this request, signed headers only, at ``stamp``."""
    signed = {name: headers[name] for name in auth.signed_headers}
    request = AWSRequest(method=method, url=f"http://{headers['host']}{target}", data=body, headers=signed)
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(auth.key, secret), auth.service, auth.region)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))
