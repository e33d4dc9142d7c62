"""DKIM signatures on the mail we send (RFC 6376; ed25519-sha256 as RFC 8463).

``DkimSigner`` is the ``Finish`` of a daemon whose ``[outbound]`` lists keys: frozen and picklable, so the
render helper processes sign exactly as the dispatcher does. Keys are read and checked once, at start
(``load_signer``), never per message. Each listed key adds one signature, so a rotated key can sign beside
the old one while both are published.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path

import dkim

from transferbot.config import Config, ConfigError

log = logging.getLogger(__name__)

# Listed twice: the second entry signs the header's absence, so a copy added on the way breaks the signature.
_SIGNED = (b"from", b"to", b"subject", b"date", b"message-id", b"in-reply-to", b"references",
           b"mime-version", b"content-type", b"content-transfer-encoding")
SIGNED_HEADERS: tuple[bytes, ...] = _SIGNED + _SIGNED


class SigningKeyError(ConfigError):
    """A DKIM key that cannot sign, phrased for the operator (names the key file)."""


@dataclass(frozen=True)
class DkimKey:
    selector: str
    algorithm: bytes  # b"rsa-sha256" or b"ed25519-sha256"
    private: bytes  # a PEM RSA key, or the base64 ed25519 seed dkimpy takes


@dataclass(frozen=True)
class DkimSigner:
    """The finish that signs: each key's DKIM-Signature header, prepended to the finished bytes."""

    domain: str
    keys: tuple[DkimKey, ...]

    def __call__(self, raw: bytes) -> bytes:
        headers = b"".join(
            dkim.sign(raw, key.selector.encode(), self.domain.encode(), key.private,
                      signature_algorithm=key.algorithm, include_headers=list(SIGNED_HEADERS))
            for key in self.keys)
        return headers + raw


def read_key(selector: str, path: Path) -> DkimKey:
    """One key file: a PEM RSA private key, or an ed25519 key (PEM PKCS#8, or the base64 seed)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"outbound.dkim_keys: key file {path}: {exc.strerror}") from None
    seed = _ed25519_seed(data)
    if seed is not None:
        key = DkimKey(selector, b"ed25519-sha256", seed)
    elif b"-----BEGIN" in data:
        key = DkimKey(selector, b"rsa-sha256", data)
    else:
        raise SigningKeyError(f"outbound.dkim_keys: key file {path}: not a DKIM private key (RSA PEM or ed25519)")
    try:  # a key that cannot sign is found now, not on the first mail
        DkimSigner("example.com", (key,))(b"From: a@example.com\r\nSubject: x\r\n\r\nx\r\n")
    except Exception as exc:  # noqa: BLE001 - dkimpy's errors vary by key kind; any of them means a bad key
        raise SigningKeyError(f"outbound.dkim_keys: key file {path}: cannot sign with it: "
                              f"{' '.join(str(exc).split())[:200]}") from None
    return key


def _ed25519_seed(data: bytes) -> bytes | None:
    text = data.strip()
    if text.startswith(b"-----BEGIN PRIVATE KEY"):
        body = b"".join(line for line in text.splitlines() if not line.startswith(b"-----"))
        try:
            der = base64.b64decode(body, validate=True)
        except ValueError:
            return None
        # PKCS#8 of an ed25519 key: a fixed 16-byte prefix, then the 32-byte seed.
        return base64.b64encode(der[16:]) if len(der) == 48 and der[:16].endswith(b"\x04\x20") else None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return text if len(raw) == 32 else None


def load_signer(config: Config) -> DkimSigner | None:
    """The signer the configuration asks for, its keys read and checked; None when no key is listed."""
    keys = config.outbound.dkim_keys
    if not keys:
        return None
    return DkimSigner(config.dkim_domain, tuple(read_key(k.selector, k.key_file) for k in keys))


def generate_key(algorithm: str) -> tuple[bytes, str]:
    """A new private key (PEM) and the value of the TXT record that publishes its public half."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if algorithm == "ed25519":
        ed = ed25519.Ed25519PrivateKey.generate()
        pem = ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
        public = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return pem, f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode('ascii')}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
