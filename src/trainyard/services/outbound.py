"""SSRF protection for every request Trainyard sends to a URL it was given: webhook URLs (core
jobs and seed 002), seed 002's external-storage endpoints (the S3 endpoint override and the
endpoint an Azure connection string names) and the chat API URL.

Two checks, one rule:

- `check_public_url(url, allow_loopback)` at registration: the URL is parsed strictly and its
  host, an IP literal or a name resolved with getaddrinfo, must be a public address. EVERY
  address a name resolves to is checked: one private answer is enough to refuse.
- `post(url, allow_loopback=...)` at delivery: the same syntax check, then a connection whose
  network backend resolves the host once, checks every address and connects to a checked one.
  TLS still verifies the certificate against the URL's host name (SNI and Host header are
  unchanged) because only the TCP connect is redirected to the address that passed. So a name
  that answers a public address to the check and a private one a moment later (DNS
  rebinding) cannot reach the private one: no second resolution happens.

The rule: https only, to a public unicast address. Refused always: private (10/8, 172.16/12,
192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), cloud metadata addresses, CGNAT
(100.64/10), unspecified (0.0.0.0, ::), multicast, reserved and documentation ranges; IPv4
written in non-canonical forms (decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f000001`,
short `127.1`) and IPv4-mapped IPv6 literals (`::ffff:127.0.0.1`), because parsers disagree
about them; IPv6 zone ids; user info in the URL (`https://example.com@127.0.0.1/`).
With `allow_loopback` (TRAINYARD_ALLOW_LOOPBACK_URLS: on for the local stack, off on AWS),
loopback targets (127/8, ::1, names resolving only to them) are allowed, and for those alone
plain http too: a developer's receiver on localhost has no certificate. Never private,
link-local or metadata addresses.

A name that does not resolve at registration is accepted (there is nothing to connect to yet,
and a receiver's DNS may be set up after the job is created); delivery checks it again.

The storage SDKs (boto3, azure-storage-blob) open their own connections, so `post` cannot carry
them: `pinned_connections(policy)` pins those instead. For the duration of the block, in the
calling context only, every TCP connection urllib3 opens (botocore's connections and the Azure
SDK's requests transport are both built on it) goes through the same resolve-once, check-every-
address, connect-to-a-checked-address step as `post`. A context variable scopes it: other threads
(a new thread starts with an empty context) and code outside the block connect as before, so the
service's own AWS calls and webhook deliveries running beside an import are untouched.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from ..errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses cloud platforms serve instance credentials on. Most lie in ranges refused anyway;
# naming them gives a clearer message (and 192.0.0.192, Oracle's, would otherwise only be
# "reserved").
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
# A host made only of digits, dots and hex letters after an "0x" is an IPv4 number in some
# parser's eyes (inet_aton accepts 1 to 4 parts, each decimal, octal or hex).
NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
FORBIDDEN_CHARACTERS = re.compile(r"[\s\\\x00-\x1f\x7f]")


class UnsafeURL(InvalidInput):
    """An outbound URL that Trainyard refuses to call (the API answers 4xx naming why)."""

    code = "unsafe_url"


def check_public_url(url: str, allow_loopback: bool, *, resolve: bool = True) -> None:
    """Refuse (UnsafeURL) a URL that is not a public https URL, as the module docstring says.
    `resolve=False` checks the URL's text only (scheme, host syntax, IP literals)."""
    scheme, host, port = _parse(url)
    literal = _ip_literal(host)
    if literal is not None:
        addresses = [literal]
    elif resolve:
        addresses = _resolve(host, port, must_resolve=False)
    else:
        addresses = []
    for address in addresses:
        _check_address(address, allow_loopback, host)
    # without resolving, a name's addresses are unknown: the pinned connection of `post`
    # enforces "http only to loopback" on the addresses it connects to
    deferred = not resolve and literal is None and allow_loopback
    if (
        scheme == "http"
        and not deferred
        and not (allow_loopback and addresses and all(_loopback(a) for a in addresses))
    ):
        raise UnsafeURL(
            f"{_shown(url)}: must be https (plain http is allowed only to loopback in development)"
        )


def post(url: str, *, allow_loopback: bool, timeout: float, **kwargs: Any) -> httpx.Response:
    """POST to `url` through a connection pinned to a checked address; never follows redirects.
    Raises UnsafeURL, without sending anything, when the URL or the address its host resolves
    to now is refused; httpx's errors otherwise."""
    scheme, _, _ = _parse(url)
    check_public_url(url, allow_loopback, resolve=False)
    backend = _PinnedBackend(ConnectPolicy(allow_loopback=allow_loopback, loopback_only=scheme == "http"))
    with httpx.Client(
        transport=_pinned_transport(backend), timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:
        return client.post(url, **kwargs)


def azure_blob_endpoint(connection_string: str) -> str | None:
    """The blob endpoint an Azure Storage connection string makes the SDK call, as the SDK
    derives it (BlobEndpoint, else the development storage emulator, else
    <protocol>://<account>.blob.<suffix>); None when the string names no account at all (the
    SDK then refuses it itself)."""
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    if fields.get("blobendpoint"):
        return fields["blobendpoint"]
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return "http://127.0.0.1:10000"
    if fields.get("accountname"):
        protocol = fields.get("defaultendpointsprotocol") or "https"
        suffix = fields.get("endpointsuffix") or "core.windows.net"
        return f"{protocol}://{fields['accountname']}.blob.{suffix}"
    return None


# --- parsing ------------------------------------------------------------------------------------


def _shown(url: str) -> str:
    """The URL as an error message names it: short, and without any user info."""
    text = url if len(url) <= 200 else url[:200] + "..."
    return repr(re.sub(r"//[^/@]*@", "//***@", text))


def _parse(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL that passes the syntax rules; the host lower-cased, IDNA
    encoded, without brackets."""
    if not isinstance(url, str) or not url:
        raise UnsafeURL("the URL is empty")
    if FORBIDDEN_CHARACTERS.search(url):
        raise UnsafeURL(f"{_shown(url)}: whitespace, control characters and backslashes are not allowed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"{_shown(url)}: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL(f"{_shown(url)}: the scheme must be https, not {scheme or 'none'!r}")
    if "@" in parts.netloc:
        raise UnsafeURL(f"{_shown(url)}: user info (user@host) is not allowed in the URL")
    host = parts.hostname or ""
    if not host:
        raise UnsafeURL(f"{_shown(url)}: the URL names no host")
    if "%" in host:
        raise UnsafeURL(f"{_shown(url)}: IPv6 zone ids name a local interface; not allowed")
    host = _canonical_name(url, host)
    _ip_literal(host)  # refuses ambiguous address forms with a message that says what they mean
    # the client that sends must see the same host as this check (a parser differential is
    # the classic way around SSRF filters)
    try:
        sent_host = httpx.URL(url).host.lower().rstrip(".")
    except httpx.InvalidURL as exc:
        raise UnsafeURL(f"{_shown(url)}: not a valid URL ({exc})") from None
    if sent_host != host.rstrip("."):
        raise UnsafeURL(f"{_shown(url)}: the host is ambiguous ({host!r} or {sent_host!r})")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _canonical_name(url: str, host: str) -> str:
    if ":" in host:  # an IPv6 literal (urlsplit took it from between brackets)
        return host
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeURL(f"{_shown(url)}: the host {host!r} is not a valid domain name") from None
    if len(ascii_host) > 253 or not all(
        HOST_LABEL.match(label) for label in ascii_host.rstrip(".").split(".")
    ):
        raise UnsafeURL(f"{_shown(url)}: the host {host!r} is not a valid domain name")
    return ascii_host


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host written as an IP literal denotes; refuses the ambiguous forms."""
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeURL(f"the host {host!r} is not a valid IPv6 address") from None
        if address.ipv4_mapped is not None:
            raise UnsafeURL(
                f"the host {host!r} is an IPv4-mapped IPv6 address (it means {address.ipv4_mapped});"
                " not allowed"
            )
        return address
    if not NUMERIC_HOST.match(host):
        return None
    denoted = _inet_aton(host.rstrip("."))
    if denoted is None:
        raise UnsafeURL(f"the host {host!r} looks like an IPv4 address but is not a valid one")
    if str(denoted) != host:
        raise UnsafeURL(
            f"the host {host!r} is IPv4 in a non-canonical form (it means {denoted}); write addresses"
            " in dotted decimal, and only public ones"
        )
    return denoted


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """What C's inet_aton (and so curl, glibc's resolver and browsers) makes of a numeric host:
    1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last part fills the rest."""
    values = []
    for part in text.split("."):
        try:
            if part.lower().startswith("0x"):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part, 10))
        except ValueError:
            return None
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


# --- addresses ----------------------------------------------------------------------------------


def _resolve(host: str, port: int, *, must_resolve: bool) -> list[IPAddress]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        if must_resolve:
            raise UnsafeURL(f"the host {host!r} does not resolve ({exc})") from None
        return []
    addresses = []
    for _family, _type, _proto, _canonname, sockaddr in answers:
        text = str(sockaddr[0]).split("%", 1)[0]  # a scope id on a link-local answer
        addresses.append(ipaddress.ip_address(text))
    if not addresses and must_resolve:
        raise UnsafeURL(f"the host {host!r} has no address")
    return addresses


def _loopback(address: IPAddress) -> bool:
    return _effective(address).is_loopback


def _effective(address: IPAddress) -> IPAddress:
    """An IPv6 address that carries an IPv4 one (mapped, or NAT64's 64:ff9b::/96) is judged
    as that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in ipaddress.IPv6Network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address: IPAddress, allow_loopback: bool) -> str | None:
    """Why `address` may not be called, or None when it may."""
    effective = _effective(address)
    if address in METADATA_ADDRESSES or effective in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if effective.is_loopback:
        return None if allow_loopback else "a loopback address (TRAINYARD_ALLOW_LOOPBACK_URLS is off)"
    if effective.is_unspecified:
        return "the unspecified address"
    if effective.is_link_local:
        return "a link-local address"
    if isinstance(effective, ipaddress.IPv4Address) and effective in CGNAT:
        return "a carrier-grade NAT (100.64.0.0/10) address"
    if effective.is_multicast:
        return "a multicast address"
    if effective.is_private:
        return "a private address"
    if effective.is_reserved or not effective.is_global:
        return "a reserved, non-public address"
    return None


def _check_address(address: IPAddress, allow_loopback: bool, host: str) -> None:
    reason = refusal(address, allow_loopback)
    if reason is not None:
        shown = host if host == str(address) else f"{host} ({address})"
        raise UnsafeURL(f"the host {shown} is {reason}; only public addresses may be called")


# --- the pinned connection ----------------------------------------------------------------------


def _pinned_transport(backend: httpcore.NetworkBackend) -> httpx.BaseTransport:
    transport = httpx.HTTPTransport()
    # httpx takes no network backend; its connection pool is replaced by one with the same
    # TLS settings and ours. tests/unit/test_outbound.py proves the pin holds end to end.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=backend
    )
    return transport


class _PinnedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, resolving each host once, checking every address and then
    connecting to a checked address (never to the name, which could resolve differently)."""

    def __init__(self, policy: ConnectPolicy) -> None:
        self._policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        address = self._policy.checked_addresses(host, port)[0]
        return super().connect_tcp(str(address), port, timeout, local_address, socket_options)


@dataclass(frozen=True)
class ConnectPolicy:
    """Which addresses a pinned connection may reach: the module's rule, loopback allowed or
    not; `loopback_only` for plain http, which may go to loopback alone."""

    allow_loopback: bool
    loopback_only: bool = False

    def checked_addresses(self, host: str, port: int) -> list[IPAddress]:
        """`host`'s addresses, resolved once (an IP literal as written), every one checked;
        UnsafeURL naming the host and why when one is refused."""
        literal = _ip_literal(host.strip("[]"))
        addresses = [literal] if literal is not None else _resolve(host, port, must_resolve=True)
        for address in addresses:
            _check_address(address, self.allow_loopback, host)
        if self.loopback_only and not all(_loopback(a) for a in addresses):
            raise UnsafeURL(f"the host {host} is not loopback; plain http is allowed only to loopback")
        return addresses


# --- the storage SDKs' connections ------------------------------------------------------------

_PINNED_POLICY: ContextVar[ConnectPolicy | None] = ContextVar("trainyard_pinned_policy", default=None)
_PIN_INSTALL = threading.Lock()
_unpinned_create_connection: Callable[..., socket.socket] | None = None


@contextmanager
def pinned_connections(policy: ConnectPolicy) -> Iterator[None]:
    """Within the block, in this context only, every connection urllib3 opens resolves its host
    once, checks every address under `policy` and connects only to a checked one. A refused
    host leaves the block as UnsafeURL, whatever an SDK wrapped it in on the way (botocore
    makes it an HTTPClientError, and retries it first)."""
    _install_pin()
    token = _PINNED_POLICY.set(policy)
    try:
        yield
    except Exception as exc:
        refused = _refusal_behind(exc)
        if refused is None or refused is exc:
            raise
        raise refused from None
    finally:
        _PINNED_POLICY.reset(token)


def _install_pin() -> None:
    """Put `_pinned_create_connection` in urllib3's seam once (the first guarded download
    imports urllib3, which nothing else here needs): HTTPConnection._new_conn calls
    urllib3.util.connection.create_connection through the module each time."""
    global _unpinned_create_connection
    from urllib3.util import connection  # noqa: PLC0415

    with _PIN_INSTALL:
        if connection.create_connection is _pinned_create_connection:
            return
        if _unpinned_create_connection is None:
            _unpinned_create_connection = connection.create_connection
        connection.create_connection = _pinned_create_connection


def _pinned_create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    """urllib3's create_connection; inside `pinned_connections`, to checked addresses only,
    tried in the resolver's order (an IP literal never reaches DNS again)."""
    assert _unpinned_create_connection is not None, "installed by _install_pin"
    policy = _PINNED_POLICY.get()
    if policy is None:
        return _unpinned_create_connection(address, *args, **kwargs)
    host, port = address
    failure: OSError | None = None
    for checked in policy.checked_addresses(host, port):
        try:
            return _unpinned_create_connection((str(checked), port), *args, **kwargs)
        except OSError as exc:
            failure = exc
    assert failure is not None, "checked_addresses returns at least one address"
    raise failure


def _refusal_behind(exc: BaseException) -> UnsafeURL | None:
    """The UnsafeURL `exc` is, or was raised while handling (an SDK's wrapper of it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UnsafeURL):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
