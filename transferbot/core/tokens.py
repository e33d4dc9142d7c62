"""Reply tokens, outgoing-message keys and transfer ids.

A token is random bytes followed by a truncated HMAC of them under the
workflow secret: unguessable, checkable at RCPT time without a database
read, and safe in a mail local part (lower-case base32, no padding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_RANDOM_BYTES = 10
_MAC_BYTES = 5
TOKEN_LENGTH = 24  # base32 of 15 bytes
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, b"transferbot-token:" + body, hashlib.sha256).digest()[:_MAC_BYTES]


def new_token(secret: bytes) -> str:
    """A fresh token; the same scheme serves reply tokens and bounce keys."""
    body = secrets.token_bytes(_RANDOM_BYTES)
    return base64.b32encode(body + _mac(secret, body)).decode("ascii").lower()


def check_token(secret: bytes, token: str) -> bool:
    """True when the token is well formed and was made with this secret."""
    token = token.strip().lower()
    if len(token) != TOKEN_LENGTH:
        return False
    try:
        raw = base64.b32decode(token.upper())
    except ValueError:
        return False
    body, mac = raw[:_RANDOM_BYTES], raw[_RANDOM_BYTES:]
    return hmac.compare_digest(mac, _mac(secret, body))


def new_transfer_id() -> str:
    """A short human reference such as TR-7K3Q9M (Crockford base32, no I/L/O/U)."""
    return "TR-" + "".join(secrets.choice(_CROCKFORD) for _ in range(6))


def new_secret() -> str:
    return secrets.token_urlsafe(32)
