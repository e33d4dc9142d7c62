"""Test helpers for sender authentication: DKIM keys made at test time, signed replies, published records."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from dataclasses import dataclass

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.dnsserver import DnsServer

SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


@dataclass(frozen=True)
class DkimKey:
    private_pem: bytes
    public_b64: str

    @property
    def record(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.public_b64}"


@functools.cache
def make_key(bits: int = 2048, index: int = 0) -> DkimKey:
    """An RSA key pair for DKIM (cached per process: generating one takes a while)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return DkimKey(pem, base64.b64encode(der).decode("ascii"))


def reply(from_addr: str = "Alice <alice@acme.example>", body: str = "APPROVE\r\n\r\nOn Mon, the marketplace wrote:\r\n",
          *, to: str = "transfer+tok3n@transfers.example.com", extra_headers: str = "",
          size: int = 0) -> bytes:
    """A plain reply as a party's mail client would send it; ``size`` pads the quoted part to about that many bytes."""
    head = (f"From: {from_addr}\r\nTo: {to}\r\nSubject: Re: Transfer TR-7K3Q9M\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <reply-1@acme.example>\r\n{extra_headers}"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
    text = body
    while len(head) + len(text) < size:
        text += "> The transfer of Analytics Pro from Reseller One to Reseller Two awaits your answer.\r\n"
    return (head + text).encode("utf-8")


def sign(message: bytes, domain: str, selector: str = "sel", key: DkimKey | None = None, **kwargs: object) -> bytes:
    """``message`` with a DKIM-Signature by ``domain`` on top."""
    key = key or make_key()
    header = dkim.sign(message, selector.encode(), domain.encode(), key.private_pem,
                       include_headers=SIGNED_HEADERS, **kwargs)
    return bytes(header) + message


def publish_key(server: DnsServer, domain: str, selector: str = "sel", key: DkimKey | None = None) -> None:
    server.txt(f"{selector}._domainkey.{domain}", (key or make_key()).record)


def dkim_lookup(server: DnsServer) -> Callable[..., bytes | None]:
    """dkimpy's ``dnsfunc``, answered by ``server`` over the wire (as a receiver looks our keys up)."""
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        except dns.exception.DNSException:
            return None
        return b"".join(answer[0].strings)
    return lookup
