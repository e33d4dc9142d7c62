"""An authoritative DNS server on loopback for tests: it stands in for the internet's DNS.

UDP and TCP on one ephemeral port of 127.0.0.1, answers built with
dnspython's message classes from a zone the test changes at run time (TXT,
A, AAAA, MX, PTR, CNAME), NXDOMAIN for names it does not hold. Faults per
name, switchable at run time: ``"drop"`` (no answer: the client times out)
and ``"servfail"``. Runs on a background thread: ``start()``/``stop()``, or
the ``dns_server`` fixture.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Self

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

log = logging.getLogger(__name__)

Fault = Literal["drop", "servfail"]


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


@dataclass
class _Records:
    by_type: dict[str, list[str]] = field(default_factory=dict)
    ttl: int = 300


class DnsServer:
    """A small authoritative server; every public method is safe to call from the test's thread."""

    def __init__(self, host: str = "127.0.0.1", default_spf: str | None = None) -> None:
        self.host = host
        self.port = 0
        # A TXT answer for every other name that is not an underscore name (_dmarc., ._domainkey.): the
        # SPF record of every domain the suite does not set up itself.
        self.default_spf = default_spf
        self._zone: dict[str, _Records] = {}
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self.queries: list[tuple[str, str, str]] = []  # (name, rdtype, "udp"|"tcp")
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()

    # -- the zone -------------------------------------------------------------------------------------------------

    def add(self, name: str, rdtype: str, *values: str, ttl: int = 300) -> DnsServer:
        with self._lock:
            records = self._zone.setdefault(_norm(name), _Records(ttl=ttl))
            records.ttl = ttl
            records.by_type.setdefault(rdtype.upper(), []).extend(values)
        return self

    def txt(self, name: str, *values: str, ttl: int = 300) -> DnsServer:
        return self.add(name, "TXT", *values, ttl=ttl)

    def set(self, name: str, rdtype: str, *values: str, ttl: int = 300) -> DnsServer:
        """Replace the records of one type at ``name``."""
        with self._lock:
            records = self._zone.setdefault(_norm(name), _Records(ttl=ttl))
            records.ttl = ttl
            records.by_type[rdtype.upper()] = list(values)
        return self

    def remove(self, name: str, rdtype: str | None = None) -> None:
        with self._lock:
            if rdtype is None:
                self._zone.pop(_norm(name), None)
            elif _norm(name) in self._zone:
                self._zone[_norm(name)].by_type.pop(rdtype.upper(), None)

    def fault(self, name: str, kind: Fault | None) -> None:
        """Make ``name`` time out ("drop") or answer SERVFAIL, or (None) answer normally again."""
        with self._lock:
            if kind is None:
                self._faults.pop(_norm(name), None)
            else:
                self._faults[_norm(name)] = kind

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def asked(self, name: str, rdtype: str | None = None) -> int:
        """How many times ``name`` (of ``rdtype``) was asked."""
        with self._lock:
            return sum(1 for n, t, _ in self.queries if n == _norm(name) and (rdtype is None or t == rdtype.upper()))

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as ``[inbound] dns_resolvers`` takes it."""
        return f"{self.host}:{self.port}"

    # -- answering ------------------------------------------------------------------------------------------------

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        """The response to one query in wire format, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        qname = _norm(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((qname, rdtype, transport))
            del self.queries[:-10000]
            fault = self._faults.get(qname)
            records = self._zone.get(qname)
            if records is None and self.default_spf and not qname.startswith("_") and "._" not in qname:
                records = _Records(by_type={"TXT": [self.default_spf]})
            by_type = {t: list(v) for t, v in records.by_type.items()} if records else None
            ttl = records.ttl if records else 300
            exists_below = any(name.endswith("." + qname) for name in self._zone)
        if fault == "drop":
            return None
        if fault == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        if by_type is None:
            if not exists_below:
                response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        owner = question.name
        if "CNAME" in by_type and rdtype != "CNAME":
            response.answer.append(self._rrset(owner, "CNAME", by_type["CNAME"], ttl))
        elif rdtype in by_type:
            response.answer.append(self._rrset(owner, rdtype, by_type[rdtype], ttl))
        max_size = 65535 if transport == "tcp" else max(512, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    @staticmethod
    def _rrset(owner: dns.name.Name, rdtype: str, values: Iterable[str], ttl: int) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.from_text(rdtype))
        for value in values:
            if rdtype == "TXT":
                raw = value.encode("utf-8")
                chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
                rdata: dns.rdata.Rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
            else:
                text = value if rdtype not in ("MX", "PTR", "CNAME") or value.endswith(".") else value + "."
                rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text)
            rrset.add(rdata, ttl)
        return rrset

    # -- the sockets ----------------------------------------------------------------------------------------------

    def _bind(self) -> None:
        """UDP and TCP on the same free port (a resolver retries over TCP on the port it used)."""
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError as exc:
                udp.close()
                tcp.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            tcp.listen(16)
            udp.setblocking(False)
            tcp.setblocking(False)
            self._udp, self._tcp, self.port = udp, tcp, port
            return
        raise RuntimeError("no free port for both UDP and TCP")

    def start(self) -> DnsServer:
        self._bind()
        self._thread = threading.Thread(target=self._serve, name=f"dns-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._udp is not None and self._tcp is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._udp, selectors.EVENT_READ, "udp")
            selector.register(self._tcp, selectors.EVENT_READ, "tcp")
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=1.0):
                    if key.data == "udp":
                        self._on_udp()
                    elif key.data == "tcp":
                        self._on_accept()

    def _on_udp(self) -> None:
        assert self._udp is not None
        try:
            wire, peer = self._udp.recvfrom(65535)
        except (BlockingIOError, OSError):
            return
        reply = self.answer(wire, "udp")
        if reply is not None:
            try:
                self._udp.sendto(reply, peer)
            except OSError:
                pass

    def _on_accept(self) -> None:
        assert self._tcp is not None
        try:
            conn, _ = self._tcp.accept()
        except (BlockingIOError, OSError):
            return
        threading.Thread(target=self._tcp_session, args=(conn,), daemon=True).start()

    def _tcp_session(self, conn: socket.socket) -> None:
        conn.setblocking(True)
        conn.settimeout(5.0)
        with conn:
            while not self._stop.is_set():
                try:
                    head = self._recv_exact(conn, 2)
                    if head is None:
                        return
                    wire = self._recv_exact(conn, struct.unpack("!H", head)[0])
                    if wire is None:
                        return
                except OSError:
                    return
                reply = self.answer(wire, "tcp")
                if reply is None:
                    continue  # "drop": the client times out
                try:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

    @staticmethod
    def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data
