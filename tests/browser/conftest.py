"""A real browser against the local stack: Playwright drives Debian's Chromium (installed by
`make test` through apt) headless, with the flags these machines need (no outside network:
background networking, component updates, sync and QUIC off) and a fresh profile per session.

Every test gets a `page` whose browser console is watched: any console error or uncaught
exception fails the test at teardown. The one kind a test may allow is Chromium's own line
for an HTTP refusal the test provokes on purpose (a wrong key's 401, a bad upload's 422):
the test lists those statuses in `expected_http_errors`. `shot(page, name)` saves a screenshot under
test-artifacts/screenshots/ (kept by CI as an artifact; two are copied into docs/images/ for
the README)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page, Playwright, sync_playwright

from tests.fake_chat_api import ChatServer, chat_server
from tests.local_stack import LocalStack

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
Shot = Callable[[Page, str], Path]


def chromium_path() -> str:
    found = os.environ.get("TRAINYARD_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package through apt")
    return found


# "package", not "session": Playwright's sync API runs an event loop on the main thread while
# it is open, and the suite's other tests call asyncio.run(), which refuses to run inside one.
# So the browser, its stack and Playwright end when the browser tests do.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser_context(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")),
        executable_path=chromium_path(),
        headless=True,
        args=CHROMIUM_FLAGS,
        viewport={"width": 1280, "height": 900},
        accept_downloads=True,
    )
    yield context
    context.close()


@pytest.fixture(scope="package")
def fake_chat() -> Iterator[ChatServer]:
    """The OpenAI-compatible chat API the console stack's assistant talks to."""
    with chat_server() as server:
        yield server


@pytest.fixture(scope="package")
def console_stack(tmp_path_factory: pytest.TempPathFactory, fake_chat: ChatServer) -> Iterator[LocalStack]:
    """One local stack (`python -m trainyard serve`) for the browser tests."""
    local = LocalStack(
        home=tmp_path_factory.mktemp("console-stack") / "home",
        extra_env={"TRAINYARD_CHAT_API_URL": fake_chat.url},
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture
def expected_http_errors() -> set[int]:
    """HTTP statuses the test provokes on purpose; Chromium logs each failed request as a
    console error ("Failed to load resource: … status of 422"), which is then not a failure."""
    return set()


@pytest.fixture
def page(browser_context: BrowserContext, expected_http_errors: set[int]) -> Iterator[Page]:
    """A new tab; fails the test if the page logged a console error or threw."""
    tab = browser_context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        refused = re.match(r"Failed to load resource: .* status of (\d+)", message.text)
        if message.type == "error" and not (refused and int(refused.group(1)) in expected_http_errors):
            problems.append(f"console error: {message.text} ({message.location})")

    def on_page_error(error: Error) -> None:
        problems.append(f"uncaught: {error}")

    tab.on("console", on_console)
    tab.on("pageerror", on_page_error)
    yield tab
    tab.close()
    assert not problems, "the browser reported errors:\n" + "\n".join(problems)


@pytest.fixture
def signed_in(page: Page, console_stack: LocalStack) -> Page:
    """The page, signed in to the console through its sign-in form."""
    sign_in(page, console_stack)
    return page


def sign_in(page: Page, stack: LocalStack, key: str | None = None) -> None:
    page.goto(f"{stack.url}/console/#/signin")
    page.get_by_label("API key").fill(key or stack.api_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/#/jobs")


@pytest.fixture(scope="session")
def shot() -> Shot:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
