"""TLS for the daemon's TCP listener: ``[api] tls_certificate`` / ``tls_key`` (PEM files) and
``tls_ca``, what clients verify the certificate with (default: the certificate itself, right for
a self-signed one).

``server_context`` loads and checks the pair once, at settings time, so a daemon that cannot
serve TLS refuses to start with the config key named (``ConfigError``), never after it forked.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from localbatch.errors import ConfigError

__all__ = ["TlsSettings", "certificate_summary", "server_context"]

_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class TlsSettings:
    certificate: Path  # PEM: the server's certificate (then its chain)
    key: Path  # PEM: its private key, unencrypted
    ca: Path | None = None  # PEM: what clients verify with; None: the certificate itself

    @property
    def ca_bundle(self) -> Path:
        """The file a client passes as ``verify=`` / ``AWS_CA_BUNDLE``."""
        return self.ca if self.ca is not None else self.certificate


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context (TLS 1.2 or later) holding the certificate and key; ConfigError naming
    ``[api] tls_certificate`` / ``[api] tls_key`` when a file is missing, unreadable, not PEM or
    the two do not belong together."""
    for name, path in (("tls_certificate", tls.certificate), ("tls_key", tls.key), ("tls_ca", tls.ca)):
        if path is None:
            continue
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"[api] {name} {path}: cannot read it: {exc.strerror or exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.certificate, tls.key)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise ConfigError(
                f"[api] tls_key {tls.key} does not belong to [api] tls_certificate {tls.certificate}"
            ) from None
        raise ConfigError(
            f"[api] tls_certificate {tls.certificate} / [api] tls_key {tls.key}: not a PEM certificate and "
            f"its unencrypted private key ({exc.reason or exc})"
        ) from None
    if tls.ca is not None and not _PEM_CERTIFICATE.search(tls.ca.read_text(errors="replace")):
        raise ConfigError(f"[api] tls_ca {tls.ca}: no PEM certificate in it")
    return context


def certificate_summary(path: Path) -> str:
    """``subject CN=..., SHA-256 AB:CD:...`` of the first certificate in ``path`` (for the
    daemon's start line); the fingerprint only when the subject cannot be read."""
    text = path.read_text(errors="replace")
    found = _PEM_CERTIFICATE.search(text)
    if found is None:
        return str(path)
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(found.group(0))).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    subject = _subject(path)
    return f"subject {subject}, SHA-256 {fingerprint}" if subject else f"SHA-256 {fingerprint}"


def _subject(path: Path) -> str | None:
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)  # CPython's own decoder
    if decode is None:
        return None
    try:
        decoded = decode(str(path))
    except (ssl.SSLError, OSError, ValueError):
        return None
    parts = [f"{_SHORT.get(k, k)}={v}" for rdn in decoded.get("subject", ()) for k, v in rdn]
    return ",".join(parts) or None


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}


def listener_url(host: str, port: int, secure: bool) -> str:
    """The TCP listener's base URL: https with TLS, IPv6 addresses in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if secure else 'http'}://{shown}:{port}"
