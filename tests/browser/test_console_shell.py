"""The console's frame: sign in and out, navigation, the seed 004 page routes, the phone
layout. The pages themselves have their own test modules."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Shot, sign_in
from tests.local_stack import LocalStack


def test_signing_in_with_a_wrong_key_says_so_and_keeps_the_user_out(
    page: Page, console_stack: LocalStack, expected_http_errors: set[int]
) -> None:
    expected_http_errors.add(401)
    page.goto(f"{console_stack.url}/console/#/jobs")
    page.wait_for_url("**/#/signin")  # not signed in: sent to the sign-in page
    page.get_by_label("API key").fill("ty_wrong_" + "x" * 30)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    assert page.evaluate("sessionStorage.getItem('trainyard.apiKey')") is None


def test_sign_in_keeps_the_key_in_session_storage_and_sign_out_forgets_it(
    page: Page, console_stack: LocalStack, shot: Shot
) -> None:
    page.goto(f"{console_stack.url}/console/#/signin")
    shot(page, "signin")
    sign_in(page, console_stack)
    assert page.evaluate("sessionStorage.getItem('trainyard.apiKey')") == console_stack.api_key
    assert page.evaluate("localStorage.getItem('trainyard.apiKey')") is None
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/#/signin")
    assert page.evaluate("sessionStorage.getItem('trainyard.apiKey')") is None


def test_the_seed_004_pages_lead_to_the_console(page: Page, console_stack: LocalStack) -> None:
    sign_in(page, console_stack)
    pages = [
        ("/", "#/digits"),
        ("/entrainer-le-modele", "#/digits/train"),
        ("/assistance", "#/assistant"),
        ("/seeds/004/", "#/digits"),
        ("/seeds/004/entrainer-le-modele", "#/digits/train"),
    ]
    for path, fragment in pages:
        page.goto(console_stack.url + path)
        page.wait_for_url(f"**/console/{fragment}")


def test_on_a_phone_the_navigation_folds_into_a_menu_usable_by_keyboard(
    page: Page, console_stack: LocalStack, shot: Shot
) -> None:
    sign_in(page, console_stack)
    page.set_viewport_size({"width": 390, "height": 844})
    menu = page.get_by_role("button", name="Menu")
    expect(page.get_by_role("link", name="Models")).to_be_hidden()
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    page.get_by_role("link", name="Models").click()
    page.wait_for_url("**/#/models")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    shot(page, "phone-models")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_french_labels_can_be_chosen(page: Page, console_stack: LocalStack) -> None:
    sign_in(page, console_stack)
    page.get_by_label("Language").select_option("fr")
    expect(page.get_by_role("link", name="Chiffres")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "fr"
    page.get_by_label("Langue").select_option("en")
    expect(page.get_by_role("link", name="Digits")).to_be_visible()
