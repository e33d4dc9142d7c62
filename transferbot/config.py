"""Configuration: one TOML file loaded once into frozen, typed objects.

Every key is documented in ``config.example.toml``. Unknown keys and bad
values stop start-up with an error that names the key; secrets are
``SecretStr`` so they never show in logs or reprs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from transferbot.core.addresses import AddressBook, AddressError, normalize_address
from transferbot.core.languages import Locale
from transferbot.core.nameservers import DnsConfigError, parse_nameserver

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_ADDRESS_LITERAL = re.compile(r"\[(?:ipv6:)?[0-9a-f:.]{2,45}\]")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


UNIX_PEER = "unix"
"""The peer of a connection to the inbound unix socket, as logged, stored and named in trusted_relays."""


class ConfigError(Exception):
    """A configuration problem, phrased for the operator (names the key)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    url: str = "sqlite:///transferbot.db"
    synchronous: Literal["full", "normal"] = "full"
    busy_timeout_ms: int = Field(default=5000, ge=0)
    pool_size: int = Field(default=8, ge=1, le=200)
    lease_seconds: float = Field(default=60.0, ge=2, le=3600)
    poll_seconds: float = Field(default=2.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        scheme = value.partition(":")[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgresql+psycopg", "postgres"):
            raise ValueError("use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
        return value


class InboundConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8025, ge=0, le=65535)
    protocol: Literal["smtp", "lmtp"] = "smtp"
    socket: Path | None = None
    socket_mode: str = "0660"
    domain: str = "transfers.example.com"
    hostname: str = ""
    reply_local_part: str = "transfer"
    bounce_local_part: str = "bounce"
    max_message_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_recipients: int = Field(default=20, ge=1)
    max_line_length: int = Field(default=998, ge=78, le=100_000)
    idle_timeout_seconds: float = Field(default=300.0, gt=0)
    max_connections_per_client: int = Field(default=20, ge=0)
    messages_per_minute_per_sender: int = Field(default=120, ge=0)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_starttls: bool = False
    sender_auth: Literal["verify", "trusted-relay", "off"] = "verify"
    dns_resolvers: tuple[str, ...] = ()
    dns_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    dns_retry_seconds: float = Field(default=15.0, gt=0, le=30)
    trusted_relays: tuple[str, ...] = ()
    trusted_authserv_id: str = ""
    allow_unauthenticated: bool = False

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.strip().lower()
        try:
            normalize_address(f"{'x'}@{value}")
        except AddressError as exc:
            raise ValueError(f"not a mail domain: {exc}") from None
        return value

    @field_validator("reply_local_part", "bounce_local_part")
    @classmethod
    def _local(cls, value: str) -> str:
        if not value or not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError("must be letters, digits, '-' or '_'")
        return value.lower()

    @field_validator("dns_resolvers")
    @classmethod
    def _resolvers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                parse_nameserver(entry)
            except DnsConfigError as exc:
                raise ValueError(str(exc)) from None
        return tuple(entry.strip() for entry in value)

    @field_validator("socket_mode")
    @classmethod
    def _socket_mode(cls, value: str) -> str:
        if not re.fullmatch(r"0?[0-7]{3}", value.strip()):
            raise ValueError(f"{value!r} is not a file mode in octal, such as \"0660\"")
        return value.strip()

    @field_validator("trusted_relays")
    @classmethod
    def _relays(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for entry in value:
            if entry.strip() == UNIX_PEER:  # the relay that connects to our unix socket: whoever may open it
                out.append(UNIX_PEER)
                continue
            try:
                out.append(str(ipaddress.ip_network(entry.strip(), strict=True)))
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an address or network (CIDR): {exc}") from None
        return tuple(out)

    @field_validator("trusted_authserv_id")
    @classmethod
    def _authserv(cls, value: str) -> str:
        value = value.strip()
        if any(c.isspace() or c in ';()"' for c in value):
            raise ValueError("an authserv-id is one word (your MX's name, Postfix's myhostname)")
        return value

    @property
    def banner_hostname(self) -> str:
        return self.hostname or self.domain

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(entry) for entry in self.trusted_relays if entry != UNIX_PEER)

    @property
    def socket_permissions(self) -> int:
        return int(self.socket_mode, 8)

    @model_validator(mode="after")
    def _sender_auth(self) -> InboundConfig:
        if self.sender_auth == "off" and not self.allow_unauthenticated:
            raise ValueError('sender_auth: "off" lets anyone who learns a reply address approve in a party\'s name; '
                             'set allow_unauthenticated = true as well to mean it')
        if self.sender_auth == "trusted-relay":
            missing = [key for key in ("trusted_relays", "trusted_authserv_id") if not getattr(self, key)]
            if missing:
                raise ValueError(f'sender_auth: "trusted-relay" needs {" and ".join(missing)}: the addresses of '
                                 'your MX and the authserv-id it writes in Authentication-Results')
        return self

    @model_validator(mode="after")
    def _socket_folder(self) -> InboundConfig:
        if self.socket is not None and not Path(self.socket).parent.is_dir():
            raise ValueError(f"socket: no such folder {Path(self.socket).parent} (for the socket {self.socket})")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> InboundConfig:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.require_starttls and not self.tls_cert:
            raise ValueError("require_starttls needs tls_cert and tls_key")
        for key in ("tls_cert", "tls_key"):
            path = getattr(self, key)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{key}: no such file {path}")
        return self

    def book(self) -> AddressBook:
        """Our addresses at the inbound domain (reply and bounce), as the edge and the reader parse them."""
        return AddressBook(domain=self.domain, reply_local=self.reply_local_part, bounce_local=self.bounce_local_part)


class DkimKeyConfig(_Section):
    selector: str
    key_file: Path

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        if not _HOSTNAME.fullmatch(value.lower()) or value.endswith("."):
            raise ValueError("must be a DNS label or dotted labels, e.g. s2026")
        return value.lower()


class OutboundConfig(_Section):
    transport: Literal["smtp", "maildir"] = "maildir"
    maildir: Path = Path("outbox")
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    tls: bool = False
    ca_file: Path | None = None
    username: str = ""
    password: SecretStr = SecretStr("")
    timeout_seconds: float = Field(default=30.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    connections: int = Field(default=4, ge=1, le=64)
    render_processes: int = Field(default=1, ge=0, le=8)
    retry_min_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    give_up_after_hours: float = Field(default=120.0, gt=0)
    from_name: str = "Marketplace Transfers"
    from_address: str = ""
    helo_name: str = ""  # empty: the inbound domain (Config fills it in)
    dkim_domain: str = ""  # empty: the From address's domain
    dkim_keys: tuple[DkimKeyConfig, ...] = ()

    @field_validator("dkim_domain")
    @classmethod
    def _dkim_domain(cls, value: str) -> str:
        value = value.strip().lower().rstrip(".")
        if value and not _HOSTNAME.fullmatch(value):
            raise ValueError("must be a domain name, e.g. marketplace.example.com")
        return value

    @field_validator("helo_name")
    @classmethod
    def _helo(cls, value: str) -> str:
        value = value.strip().lower()
        if value and not (_HOSTNAME.fullmatch(value) or _ADDRESS_LITERAL.fullmatch(value)):
            raise ValueError("must be a host name (mta.example.com) or an address literal ([192.0.2.7])")
        return value

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        if not value:
            return value
        name, addr = parseaddr(value)
        if name:
            raise ValueError("give the bare address here; the display name is from_name")
        try:
            return normalize_address(addr or value)
        except AddressError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _tls_modes(self) -> OutboundConfig:
        if self.starttls and self.tls:
            raise ValueError("starttls and tls are exclusive: choose one")
        if self.retry_max_seconds < self.retry_min_seconds:
            raise ValueError("retry_max_seconds must not be below retry_min_seconds")
        return self


class WorkflowConfig(_Section):
    secret: SecretStr = SecretStr("")
    operator_address: str = ""
    default_locale: Locale = "en"
    default_timezone: str = "UTC"
    remind_after_days: tuple[float, ...] = (3.0, 7.0, 12.0)
    expire_after_days: float = Field(default=14.0, gt=0, le=365)
    warn_before_days: float = Field(default=2.0, ge=0)
    sweep_seconds: float = Field(default=60.0, gt=0)

    @field_validator("remind_after_days")
    @classmethod
    def _reminders(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(day <= 0 for day in value):
            raise ValueError("reminder days must be positive")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _windows(self) -> WorkflowConfig:
        if self.warn_before_days >= self.expire_after_days:
            raise ValueError("warn_before_days must be less than expire_after_days")
        return self

    @field_validator("operator_address")
    @classmethod
    def _operator(cls, value: str) -> str:
        if not value:
            return value
        try:
            return normalize_address(value)
        except AddressError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("default_timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class WebhooksConfig(_Section):
    allow_private_networks: bool = False
    timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    max_response_bytes: int = Field(default=65536, ge=0, le=16 * 1024 * 1024)
    max_age_hours: float = Field(default=72.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=64)
    retry_first_seconds: float = Field(default=5.0, ge=0.1, le=3600)


class ApiConfig(_Section):
    """The HTTP API (/v1): how many requests one key may make (a token bucket per key, per daemon)."""

    rate_limit_per_minute: int = Field(default=600, ge=0)  # 0: no limit
    rate_limit_burst: int = Field(default=60, ge=1)


class HttpConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Behind a TLS-terminating proxy: the URL people and systems use (links, Secure cookies); empty: none.
    public_url: str = ""
    max_body_bytes: int = Field(default=65536, ge=1024, le=10 * 1024 * 1024)
    # -- the dashboard (issue 12) --
    # Behind an authenticating proxy: the request header naming the signed-in user (a registered operator).
    trusted_user_header: str = ""
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # -- what a client may hold: the names it may ask for, time, connections --
    # The Host names answered (besides public_url's host): a name, "*.example.com" (its subdomains), "*" (any).
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    keep_alive_seconds: float = Field(default=5.0, gt=0, le=300)
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    max_connections: int = Field(default=500, ge=1, le=100_000)

    @field_validator("trusted_user_header")
    @classmethod
    def _user_header(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
            raise ValueError("give a header name such as X-Forwarded-User (letters, digits and '-')")
        if value.lower() in ("cookie", "authorization", "host", "content-type", "content-length"):
            raise ValueError(f"{value} is not a header an authenticating proxy sets for the user")
        return value

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("give the URL as https://HOST[:PORT][/PATH]")
        if value and not urlsplit(value).hostname:
            raise ValueError("give the URL as https://HOST[:PORT][/PATH]: it names no host")
        return value.rstrip("/")

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for entry in value:
            name = entry.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
            if name != "*" and not _HOSTNAME.fullmatch(name.removeprefix("*.")) and not _is_ip(name):
                raise ValueError(f"{entry!r} is not a host name, an IP address, \"*.DOMAIN\" or \"*\" (no port)")
            out.append(name)
        return tuple(out)

    @model_validator(mode="after")
    def _some_host(self) -> HttpConfig:
        if not self.allowed_hosts and not self.public_url:
            raise ValueError("allowed_hosts: empty and no public_url: every request would be refused")
        return self

    @property
    def hosts(self) -> tuple[str, ...]:
        """The Host names answered: ``allowed_hosts`` and ``public_url``'s host."""
        public = urlsplit(self.public_url).hostname if self.public_url else None
        return (*self.allowed_hosts, public) if public and public not in self.allowed_hosts else self.allowed_hosts

    @property
    def https(self) -> bool:
        """Reached through TLS (public_url is https): cookies are Secure, browsers are told to keep to https."""
        return self.public_url.startswith("https://")


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(_Section):
    database: DatabaseConfig = DatabaseConfig()
    inbound: InboundConfig = InboundConfig()
    outbound: OutboundConfig = OutboundConfig()
    workflow: WorkflowConfig = WorkflowConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    http: HttpConfig = HttpConfig()
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()
    source: str = Field(default="built-in defaults", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _helo_default(cls, data: Any) -> Any:
        """The name we greet the relay with (EHLO) is the inbound domain unless set: aiosmtplib's own
        default is this host's name, often just "localhost", which relays and their logs hold against us."""
        if not isinstance(data, dict):
            return data
        outbound, inbound = data.get("outbound") or {}, data.get("inbound") or {}
        given = outbound.helo_name if isinstance(outbound, OutboundConfig) else outbound.get("helo_name", "")
        if given:
            return data
        domain = inbound.domain if isinstance(inbound, InboundConfig) else inbound.get("domain", "")
        domain = str(domain or InboundConfig.model_fields["domain"].default).strip().lower()
        if not _HOSTNAME.fullmatch(domain):
            return data  # inbound.domain's own check names the problem
        if isinstance(outbound, OutboundConfig):
            return {**data, "outbound": outbound.model_copy(update={"helo_name": domain})}
        return {**data, "outbound": {**outbound, "helo_name": domain}}

    @model_validator(mode="after")
    def _leases_outlast_the_work(self) -> Config:
        """A daemon holds claimed work for lease_seconds; should one attempt take longer (a slow relay, slow
        DNS), another daemon would take the work while it is still under way and do it twice."""
        longest = max(self.outbound.timeout_seconds, self.webhooks.timeout_seconds, 2 * self.inbound.dns_timeout_seconds)
        if self.database.lease_seconds <= longest:
            raise ValueError(f"database.lease_seconds ({self.database.lease_seconds:g}) must exceed the longest "
                             f"single attempt ({longest:g} s: outbound.timeout_seconds, webhooks.timeout_seconds, "
                             "twice inbound.dns_timeout_seconds)")
        return self

    @model_validator(mode="after")
    def _dkim_aligned(self) -> Config:
        """A signature by a domain other than the From domain or a parent of it does not align for DMARC:
        receivers would treat our mail as unsigned."""
        domain = self.from_address.rpartition("@")[2].lower()
        signing = self.outbound.dkim_domain
        if self.outbound.dkim_keys and signing and not (domain == signing or domain.endswith("." + signing)):
            raise ValueError(f"outbound.dkim_domain: {signing} is not {domain} (the From address's domain) "
                             "nor a parent domain of it")
        return self

    @property
    def dkim_domain(self) -> str:
        """The domain our mail is signed for: the From address's unless set."""
        return self.outbound.dkim_domain or self.from_address.rpartition("@")[2].lower()

    @property
    def from_address(self) -> str:
        """The address our mail comes from: the bare reply address unless set."""
        return self.outbound.from_address or f"{self.inbound.reply_local_part}@{self.inbound.domain}"


def _describe(error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    # A section's own validator names the key it is about as "key: ..."; put it in the dotted name.
    named = re.match(r"([a-z_]+): ", message)
    if named and len(error["loc"]) == 1 and named.group(1) in _section_keys(str(error["loc"][0])):
        return f"{key}.{named.group(1)}: {message[named.end():]}"
    return f"{key}: {message}" if key else message


def _section_keys(section: str) -> set[str]:
    field = Config.model_fields.get(section)
    model = field.annotation if field else None
    return set(getattr(model, "model_fields", {}))


def parse_config(data: dict[str, Any], source: str = "<memory>", env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed TOML document; raise ConfigError naming the key."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if "source" in data:
        raise ConfigError(f"{source}: source: unknown key")
    secret = environ.get("TRANSFERBOT_SECRET")
    if secret:
        data = {**data, "workflow": {**data.get("workflow", {}), "secret": secret}}
    try:
        return Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Find and load the configuration: --config, $TRANSFERBOT_CONFIG, ./transferbot.toml, defaults."""
    env = dict(os.environ) if env is None else env
    chosen: Path | None = None
    if path is not None:
        chosen = Path(path)
    elif env.get("TRANSFERBOT_CONFIG"):
        chosen = Path(env["TRANSFERBOT_CONFIG"])
    elif Path("transferbot.toml").is_file():
        chosen = Path("transferbot.toml")
    if chosen is None:
        return parse_config({}, "built-in defaults", env)
    try:
        text = chosen.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {chosen}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    return parse_config(data, str(chosen), env)
