"""SSRF protection (services/outbound.py): the registration check refuses every non-public
form of address, with loopback allowed or not; names are resolved and every address checked;
delivery resolves once and connects to the checked address, so DNS rebinding cannot reach a
private one; inside `pinned_connections` the storage SDKs' connections (urllib3's) do the same,
in the guarded thread only."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.helpers import QuietHandler, serve_locally
from trainyard.services import outbound
from trainyard.services.outbound import UnsafeURL, azure_blob_endpoint, check_public_url
from trainyard.settings import Settings

REAL_GETADDRINFO = socket.getaddrinfo


def answers(*addresses: str, port: int = 443) -> list[tuple[Any, ...]]:
    """getaddrinfo's answer list for these addresses."""
    result = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr: tuple[Any, ...] = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
        result.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
    return result


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], list[str]]]:
    return fake_resolver(monkeypatch)


def fake_resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], list[str]]]:
    """Names ending in .test resolve through this table (each entry a function, so a test can
    answer differently on each lookup); other names resolve as usual."""
    table: dict[str, Callable[[], list[str]]] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.endswith(".test"):
            if name not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return answers(*table[name](), port=int(port or 0))
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def fixed(*addresses: str) -> Callable[[], list[str]]:
    return lambda: list(addresses)


# (url, allowed when loopback is allowed); every one is refused when loopback is not allowed
REFUSED = [
    ("https://127.0.0.1/hook", True),
    ("https://127.8.9.10/hook", True),
    ("https://localhost/hook", True),
    ("http://localhost/hook", True),  # plain http, to loopback, in development
    ("http://127.0.0.1:8080/hook", True),
    ("https://[::1]/hook", True),
    ("https://0.0.0.0/hook", False),  # the unspecified address reaches the local host on Linux
    ("https://[::]/hook", False),
    ("https://10.0.0.1/hook", False),
    ("https://10.255.255.255/hook", False),
    ("https://172.16.0.1/hook", False),
    ("https://172.31.255.1/hook", False),
    ("https://192.168.1.1/hook", False),
    ("https://169.254.169.254/latest/meta-data/", False),
    ("https://169.254.170.2/v2/credentials", False),
    ("https://169.254.1.1/", False),
    ("https://[fd00:ec2::254]/", False),
    ("https://[fe80::1]/", False),
    ("https://[fc00::1]/", False),
    ("https://100.64.0.1/", False),
    ("https://100.127.255.254/", False),
    ("https://100.100.100.200/", False),
    ("https://224.0.0.1/", False),
    ("https://[ff02::1]/", False),
    ("https://240.0.0.1/", False),
    ("https://255.255.255.255/", False),
    ("https://192.0.2.1/", False),  # documentation range: never a real receiver
    ("https://[::ffff:10.0.0.1]/", False),
    ("https://[::ffff:127.0.0.1]/", False),  # IPv4-mapped: refused even where loopback is allowed
    ("https://[::ffff:7f00:1]/", False),
    ("https://[::ffff:169.254.169.254]/", False),
    ("https://[64:ff9b::a9fe:a9fe]/", False),  # NAT64 of 169.254.169.254
    ("https://[::127.0.0.1]/", False),  # IPv4-compatible (deprecated) form
    ("https://2130706433/", False),  # decimal 127.0.0.1
    ("https://0x7f000001/", False),
    ("https://0177.0.0.1/", False),  # octal
    ("https://0x7f.0.0.1/", False),
    ("https://127.1/", False),  # short form
    ("https://10.1/", False),
    ("https://017700000001/", False),
    ("https://3232235777/", False),  # 192.168.1.1
    ("https://0/", False),
    ("https://127.0.0.1./", False),  # trailing dot
    ("https://[fe80::1%25eth0]/", False),  # zone id
    ("https://example.com@127.0.0.1/", False),  # user info tricks
    ("https://user:pass@example.com/", False),
    ("https://127.0.0.1#@example.com/", True),  # the host really is 127.0.0.1
    ("https://example.com\\@127.0.0.1/", False),
    ("https://exa mple.com/", False),
    ("https://example.com\r\n.evil/", False),
    ("ftp://example.com/hook", False),
    ("file:///etc/passwd", False),
    ("gopher://127.0.0.1:6379/_INFO", False),
    ("dict://127.0.0.1:11211/", False),
    ("javascript:alert(1)", False),
    ("//example.com/hook", False),
    ("https:///hook", False),
    ("http://example.com/hook", False),  # plain http to a public host
    ("https://metadata.test/computeMetadata/v1/", False),  # a name resolving to metadata
    ("https://private.test/hook", False),  # a name resolving to a private address
    ("https://mixed.test/hook", False),  # one public and one private answer: refused
    ("https://mapped.test/hook", False),  # a name answering an IPv4-mapped private address
    ("https://loopback.test/hook", True),  # a name resolving to loopback
    ("https://bad_label.example/", False),
    ("https://-leading.example/", False),
    ("https://" + "a" * 64 + ".example/", False),
    ("https://example.com:99999/", False),
    ("", False),
]


@pytest.fixture
def names(fake_dns: dict[str, Callable[[], list[str]]]) -> None:
    fake_dns["metadata.test"] = fixed("169.254.169.254")
    fake_dns["private.test"] = fixed("10.1.2.3")
    fake_dns["mixed.test"] = fixed("93.184.216.34", "192.168.0.10")
    fake_dns["mapped.test"] = fixed("::ffff:10.0.0.1")
    fake_dns["loopback.test"] = fixed("127.0.0.1", "::1")
    fake_dns["public.test"] = fixed("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")


@pytest.mark.usefixtures("names")
@pytest.mark.parametrize(("url", "allowed_with_loopback"), REFUSED)
def test_refused_without_loopback_and_with_it_only_when_loopback(
    url: str, allowed_with_loopback: bool
) -> None:
    with pytest.raises(UnsafeURL) as refused:
        check_public_url(url, allow_loopback=False)
    assert refused.value.message  # a reason for the 4xx
    if allowed_with_loopback:
        check_public_url(url, allow_loopback=True)
    else:
        with pytest.raises(UnsafeURL):
            check_public_url(url, allow_loopback=True)


@pytest.mark.usefixtures("names")
@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("https://169.254.169.254/", "metadata"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("https://100.64.0.1/", "carrier-grade NAT"),
        ("https://10.0.0.1/", "private"),
        ("https://169.254.1.1/", "link-local"),
        ("https://127.0.0.1/", "loopback"),
        ("https://2130706433/", "it means 127.0.0.1"),
        ("https://0177.0.0.1/", "it means 127.0.0.1"),
        ("https://[::ffff:7f00:1]/", "IPv4-mapped"),
        ("https://mixed.test/", "192.168.0.10"),
        ("https://example.com@127.0.0.1/", "user info"),
        ("ftp://example.com/", "scheme"),
        ("http://example.com/", "must be https"),
    ],
)
def test_the_refusal_names_the_problem(url: str, named: str) -> None:
    with pytest.raises(UnsafeURL, match=named.replace(".", r"\.")):
        check_public_url(url, allow_loopback=False)


@pytest.mark.usefixtures("names")
@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://public.test/hook?x=1",
        "https://public.test:8443/hook",
        "https://PUBLIC.test/hook",
        "https://unresolvable.test/hook",  # not resolvable yet: checked again at delivery
    ],
)
def test_public_https_urls_are_accepted(url: str) -> None:
    check_public_url(url, allow_loopback=False)


def test_an_unresolvable_name_is_refused_at_delivery(fake_dns: dict[str, Any]) -> None:
    with pytest.raises(UnsafeURL, match="does not resolve"):
        outbound.post("https://unresolvable.test/hook", allow_loopback=False, timeout=2, content=b"{}")


def test_the_setting_defaults_to_on_locally_and_off_on_aws() -> None:
    assert Settings(backend="local").allows_loopback_urls is True
    assert Settings(backend="aws").allows_loopback_urls is False
    assert Settings(backend="local", allow_loopback_urls=False).allows_loopback_urls is False


# --- delivery: resolve once, check, connect to the checked address ------------------------------


@contextmanager
def http_receiver() -> Iterator[tuple[int, list[dict[str, str]]]]:
    """A plain HTTP server on 127.0.0.1 recording the headers of each POST it gets."""
    seen: list[dict[str, str]] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("content-length", 0)))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.end_headers()

    with serve_locally(Handler) as base_url:
        yield int(base_url.rsplit(":", 1)[1]), seen


def test_delivery_resolves_once_and_keeps_the_host_header(fake_dns: dict[str, Any]) -> None:
    lookups: list[str] = []

    def pinned() -> list[str]:
        lookups.append("pinned.test")
        return ["127.0.0.1"]

    fake_dns["pinned.test"] = pinned
    with http_receiver() as (port, seen):
        response = outbound.post(
            f"http://pinned.test:{port}/hook", allow_loopback=True, timeout=5, content=b"{}"
        )
    assert response.status_code == 204
    assert len(seen) == 1 and seen[0]["host"] == f"pinned.test:{port}"
    assert lookups == ["pinned.test"]  # the connection used the one checked answer


def test_dns_rebinding_between_check_and_delivery_is_refused(fake_dns: dict[str, Any]) -> None:
    """The name answers a public address to the registration check, then the loopback address
    where a receiver listens: the delivery is refused and the receiver gets nothing."""
    answers_in_turn = iter([["93.184.216.34"], ["127.0.0.1"]])
    fake_dns["rebind.test"] = lambda: next(answers_in_turn)
    with http_receiver() as (port, seen):
        url = f"https://rebind.test:{port}/hook"
        check_public_url(url, allow_loopback=False)  # registration: public
        with pytest.raises(UnsafeURL, match="loopback"):
            outbound.post(url, allow_loopback=False, timeout=5, content=b"{}")
    assert seen == []


def test_a_rebinding_to_a_private_address_is_refused_even_with_loopback_allowed(
    fake_dns: dict[str, Any],
) -> None:
    answers_in_turn = iter([["127.0.0.1"], ["169.254.169.254"]])
    fake_dns["rebind.test"] = lambda: next(answers_in_turn)
    url = "https://rebind.test/latest/meta-data/"
    check_public_url(url, allow_loopback=True)
    with pytest.raises(UnsafeURL, match="metadata"):
        outbound.post(url, allow_loopback=True, timeout=5, content=b"{}")


def test_plain_http_at_delivery_needs_every_address_loopback(fake_dns: dict[str, Any]) -> None:
    fake_dns["half.test"] = fixed("127.0.0.1", "93.184.216.34")
    with pytest.raises(UnsafeURL, match="plain http"):
        outbound.post("http://half.test/hook", allow_loopback=True, timeout=5, content=b"{}")


def test_delivery_refuses_a_literal_without_sending(fake_dns: dict[str, Any]) -> None:
    with http_receiver() as (port, seen):
        with pytest.raises(UnsafeURL, match="loopback"):
            outbound.post(f"https://127.0.0.1:{port}/hook", allow_loopback=False, timeout=5, content=b"{}")
        with pytest.raises(UnsafeURL, match="user info"):
            outbound.post(f"http://x@127.0.0.1:{port}/hook", allow_loopback=True, timeout=5, content=b"{}")
    assert seen == []


# --- the endpoints an Azure connection string makes the SDK call ------------------------------


@pytest.mark.parametrize(
    ("connection_string", "endpoint"),
    [
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
            "https://acct.blob.core.windows.net",
        ),
        ("AccountName=acct;AccountKey=a2V5", "https://acct.blob.core.windows.net"),
        (
            "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://169.254.169.254/x;",
            "http://169.254.169.254/x",
        ),
        ("UseDevelopmentStorage=true", "http://127.0.0.1:10000"),
        ("AccountName=a;AccountKey=k;EndpointSuffix=internal.test", "https://a.blob.internal.test"),
        ("not a connection string", None),
    ],
)
def test_azure_blob_endpoint(connection_string: str, endpoint: str | None) -> None:
    assert azure_blob_endpoint(connection_string) == endpoint


# --- the storage SDKs' connections: pinned inside pinned_connections ---------------------------


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    return recorded_connects(monkeypatch)


def recorded_connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connect this process makes, recorded; only loopback ones go through, so a
    connect that escaped the pin is seen here instead of reaching the network."""
    made: list[tuple[str, int]] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple):
            made.append((str(address[0]), int(address[1])))
            if not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback:
                raise ConnectionRefusedError(f"the test lets no connection leave the host ({address[0]})")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return made


def in_turn(*answers_: list[str]) -> Callable[[], list[str]]:
    """A rebinding name: each lookup gets the next answer, the last one for good."""
    remaining = list(answers_)
    return lambda: remaining.pop(0) if len(remaining) > 1 else remaining[0]


def s3_client(endpoint: str, max_attempts: int) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-real-secret",
        config=Config(retries={"max_attempts": max_attempts, "mode": "standard"}, connect_timeout=2),
    )


def post_through_urllib3(url: str) -> int:
    """One POST on a fresh pool (so a fresh connection), no retries: the way the SDKs connect."""
    import urllib3

    with urllib3.PoolManager(retries=False) as pool:
        return int(pool.request("POST", url, body=b"{}").status)


@pytest.mark.parametrize(
    ("private", "named"),
    [("127.0.0.1", "loopback"), ("10.0.0.5", "private"), ("169.254.169.254", "metadata")],
)
def test_an_sdk_connection_after_the_check_never_reaches_a_rebound_address(
    fake_dns: dict[str, Any], connects: list[tuple[str, int]], private: str, named: str
) -> None:
    """The endpoint check sees a public address; the name then answers a private one. boto3's
    connection inside the guard resolves through the pin, is refused, and nothing connects."""
    fake_dns["s3.rebind.test"] = in_turn(["93.184.216.34"], [private])
    endpoint = "https://s3.rebind.test"
    check_public_url(endpoint, allow_loopback=False)
    with pytest.raises(UnsafeURL, match=rf"s3\.rebind\.test \({private}\) is .*{named}"):
        with outbound.pinned_connections(outbound.ConnectPolicy(allow_loopback=False)):
            s3_client(endpoint, max_attempts=2).get_object(Bucket="datasets", Key="teeth.zip")
    assert connects == []


def test_each_sdk_connection_goes_to_the_address_its_own_lookup_checked(
    fake_dns: dict[str, Any], connects: list[tuple[str, int]]
) -> None:
    """Pinning means: one lookup per connection, and the connect goes to an address that lookup
    returned and the policy passed. The first attempt's public address is connected to (and
    refused by the test, standing in for a network failure); botocore's retries each look the
    name up again, get the metadata address, and are refused without a connect."""
    answered: list[str] = []

    def rebinding() -> list[str]:
        answered.append("93.184.216.34" if not answered else "169.254.169.254")
        return answered[-1:]

    fake_dns["s3.rebind.test"] = rebinding
    with pytest.raises(UnsafeURL, match="metadata"):
        with outbound.pinned_connections(outbound.ConnectPolicy(allow_loopback=False)):
            s3_client("https://s3.rebind.test", max_attempts=2).get_object(Bucket="datasets", Key="k")
    assert len(answered) >= 2  # the retries happened, each with its own lookup
    assert connects == [("93.184.216.34", 443)]  # one connect, the first lookup's checked answer


def test_a_pinned_connection_keeps_the_host_header_and_resolves_once(
    fake_dns: dict[str, Any], connects: list[tuple[str, int]]
) -> None:
    fake_dns["storage.test"] = in_turn(["127.0.0.1"], ["10.0.0.5"])
    with http_receiver() as (port, seen):
        with outbound.pinned_connections(outbound.ConnectPolicy(allow_loopback=True, loopback_only=True)):
            assert post_through_urllib3(f"http://storage.test:{port}/x") == 204
            with pytest.raises(UnsafeURL, match=r"storage\.test \(10\.0\.0\.5\) is a private address"):
                post_through_urllib3(f"http://storage.test:{port}/x")  # a new connection, a new lookup
    assert [host for host, _ in connects] == ["127.0.0.1"]
    assert len(seen) == 1 and seen[0]["host"] == f"storage.test:{port}"


def test_the_guard_refuses_loopback_when_the_setting_is_off_and_plain_http_to_a_public_host(
    fake_dns: dict[str, Any], connects: list[tuple[str, int]]
) -> None:
    fake_dns["half.test"] = fixed("127.0.0.1", "93.184.216.34")
    with http_receiver() as (port, seen):
        with outbound.pinned_connections(outbound.ConnectPolicy(allow_loopback=False)):
            with pytest.raises(UnsafeURL, match="loopback"):
                post_through_urllib3(f"http://127.0.0.1:{port}/x")
        with outbound.pinned_connections(outbound.ConnectPolicy(allow_loopback=True, loopback_only=True)):
            with pytest.raises(UnsafeURL, match="plain http is allowed only to loopback"):
                post_through_urllib3(f"http://half.test:{port}/x")
    assert seen == [] and connects == []


def test_other_threads_and_code_after_the_block_connect_as_before(connects: list[tuple[str, int]]) -> None:
    """The guard is this context's alone: a thread started inside the block (a new thread has an
    empty context), and this thread once the block ends, reach loopback with the guard strict."""
    import urllib3.util.connection

    with http_receiver() as (port, seen):
        url = f"http://127.0.0.1:{port}/x"
        statuses: list[int] = []
        with outbound.pinned_connections(outbound.ConnectPolicy(allow_loopback=False)):
            seam = urllib3.util.connection.create_connection
            other = threading.Thread(target=lambda: statuses.append(post_through_urllib3(url)))
            other.start()
            other.join(10)
            with pytest.raises(UnsafeURL, match="loopback"):
                post_through_urllib3(url)
            with outbound.pinned_connections(outbound.ConnectPolicy(allow_loopback=True)):
                assert urllib3.util.connection.create_connection is seam  # installed once
                assert post_through_urllib3(url) == 204  # the inner block's policy
            with pytest.raises(UnsafeURL, match="loopback"):  # the outer one's again
                post_through_urllib3(url)
        assert post_through_urllib3(url) == 204
    assert statuses == [204]
    assert len(seen) == 3 and len(connects) == 3
