"""The Tags (seed 003), Digits (seed 004) and Assistant pages in a real browser against the
local stack: real SQLite, files and training subprocesses; the assistant's chat API is the
session's fake OpenAI-compatible server (conftest.py `fake_chat`).

- Tags: 10 red and 10 blue/green synthetic images added at once, marked positive and negative
  for the tag "red", trained (the first training also builds the tenant's embedder), then new
  images scored: the bars are shown and a red image scores above a blue one.
- Digits: two small CSVs and 6 epochs train a model whose accuracy the page shows; a digit
  drawn with mouse events is predicted (a digit 0-9 is shown; a tiny model need not be right);
  an empty canvas gets the route's message.
- Assistant: a job that really failed (ImageNet weights asked for, none installed) is picked
  and "why did my job fail?" asked; the fake server's answer is shown and the job's error
  reached the server in the request.
- A second, bare stack (no chat API, seed 004's training wait at 0): the assistant page shows
  how to configure it (the API's 503 message), and a digits training the route stops waiting
  for is followed on /v1/jobs until its accuracy is shown.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import FilePayload, Page, expect

from tests.browser.conftest import Shot, sign_in
from tests.fake_chat_api import ChatServer, reply_to
from tests.local_stack import LocalStack, wait_for_job
from tests.synthetic import class_folder_zip, shape_image
from tests.synthetic_digits import digit_rows, digits_csv

TRAINING_TIMEOUT_MS = 300_000  # training shares 2 CPU cores with other test runs
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def image_files(label: str, count: int, seed: int, prefix: str) -> list[FilePayload]:
    rng = random.Random(seed)
    return [
        {"name": f"{prefix}-{i:02d}.png", "mimeType": "image/png", "buffer": shape_image(label, rng)}
        for i in range(count)
    ]


def csv_file(name: str, rows: int, seed: int) -> FilePayload:
    return {"name": name, "mimeType": "text/csv", "buffer": digits_csv(digit_rows(rows, seed), header=True)}


def fits_a_phone(page: Page) -> None:
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


@pytest.fixture(scope="module")
def failed_job(console_stack: LocalStack) -> dict[str, Any]:
    """A classification job that really fails: it asks for ImageNet weights, none installed."""
    with console_stack.client() as api:
        dataset = api.post(
            "/v1/datasets",
            data={"name": "shapes-to-fail"},
            files={"file": ("shapes.zip", class_folder_zip(3, seed=21), "application/zip")},
        )
        assert dataset.status_code == 201, dataset.text
        body = {
            "type": "train",
            "task": "classification",
            "dataset_id": dataset.json()["id"],
            "model_name": "will-fail",
            "params": {"backbone": "mobilenet_v2", "weights": "imagenet", "epochs": 1, "image_size": 32},
        }
        created = api.post("/v1/jobs", json=body)
        assert created.status_code == 202, created.text
        job = wait_for_job(api, created.json()["id"], lambda j: j["status"] == "FAILED", timeout=300)
    assert "TRAINYARD_WEIGHTS_DIR" in job["error"]
    return job


def score_of(page: Page, image: FilePayload, tag: str) -> float:
    page.get_by_label("Image to score").set_input_files(image)
    scored = page.get_by_role("heading", name=f"Scores of {image['name']}")
    expect(scored).to_be_visible(timeout=60_000)
    meter = page.get_by_role("meter", name=tag)
    expect(meter).to_be_visible()
    return float(meter.get_attribute("aria-valuenow") or "nan")


def test_tags_add_mark_train_and_score(signed_in: Page, shot: Shot) -> None:
    page = signed_in
    page.goto(page.url.split("#")[0] + "#/tags")
    expect(page.get_by_role("heading", name="Custom tags")).to_be_visible()
    reds = image_files("circle", 10, seed=1, prefix="red")
    others = image_files("triangle", 5, seed=2, prefix="blue") + image_files(
        "square", 5, seed=3, prefix="green"
    )
    page.get_by_label("Images", exact=True).set_input_files(reds + others)
    expect(page.get_by_text("20 image(s) added.")).to_be_visible(timeout=120_000)
    expect(page.get_by_role("img", name="red-00.png")).to_be_visible()

    page.get_by_label("Tag", exact=True).fill("red")
    for image in reds:
        page.get_by_role("button", name=f"Mark {image['name']} as Positive").click()
    for image in others:
        page.get_by_role("button", name=f"Mark {image['name']} as Negative").click()
    expect(page.get_by_text("Tag “red”: 10 positive, 10 negative.")).to_be_visible()
    expect(page.get_by_role("button", name="Mark red-03.png as Positive")).to_have_attribute(
        "aria-pressed", "true"
    )

    page.get_by_role("button", name="Train the tag").click()
    trained = page.get_by_text(re.compile(r"Tag “red” trained: accuracy \d+\.\d % on its 20 examples\."))
    expect(trained).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    expect(page.get_by_role("link", name="Its training job")).to_have_attribute("href", re.compile("#/jobs/"))

    blue_score = score_of(page, image_files("triangle", 1, seed=90, prefix="new-blue")[0], "red")
    red_score = score_of(page, image_files("circle", 1, seed=91, prefix="new-red")[0], "red")
    assert 0 <= blue_score < red_score <= 1
    expect(page.get_by_text("Tags that apply (score ≥ 50 %)")).to_be_visible()
    shot(page, "tags")
    fits_a_phone(page)
    shot(page, "tags-phone")
    page.set_viewport_size(DESKTOP)


def test_digits_an_empty_canvas_gets_the_routes_message(signed_in: Page) -> None:
    page = signed_in
    page.goto(page.url.split("#")[0] + "#/digits")
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("status")).to_have_text("The drawing is empty: draw a digit first.")


def test_digits_train_from_two_csvs_then_draw_and_predict(signed_in: Page, shot: Shot) -> None:
    page = signed_in
    page.goto(page.url.split("#")[0] + "#/digits/train")
    expect(page.get_by_role("heading", name="Train the digit model")).to_be_visible()
    page.get_by_label("Training set (CSV)").set_input_files(csv_file("train.csv", 300, seed=1))
    page.get_by_label("Test set (CSV)").set_input_files(csv_file("test.csv", 60, seed=2))
    page.get_by_label("Epochs").fill("6")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_role("progressbar")).to_be_visible()  # while the route waits for the job
    accuracy = page.get_by_text(re.compile(r"^Accuracy on the test set: \d+\.\d\d %$"))
    expect(accuracy).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    expect(page.get_by_role("link", name=re.compile("^Job job_"))).to_be_visible()
    shot(page, "digits-train")

    page.get_by_role("link", name="Draw a digit to try it").click()
    canvas = page.get_by_role("img", name=re.compile("^Drawing area"))
    box = canvas.bounding_box()
    assert box is not None
    # a 7: the top bar, then the diagonal down to the bottom left
    stroke = [(0.25, 0.2), (0.5, 0.2), (0.75, 0.2), (0.6, 0.5), (0.5, 0.7), (0.4, 0.85)]
    page.mouse.move(box["x"] + stroke[0][0] * box["width"], box["y"] + stroke[0][1] * box["height"])
    page.mouse.down()
    for x, y in stroke[1:]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
    page.mouse.up()
    page.get_by_role("button", name="Predict").click()
    read = page.get_by_text(re.compile(r"^The model reads: [0-9]$"))
    expect(read).to_be_visible(timeout=60_000)
    assert re.fullmatch(r"[0-9]", page.locator("[data-digit]").inner_text())
    shot(page, "digits-draw")
    fits_a_phone(page)
    shot(page, "digits-draw-phone")
    page.set_viewport_size(DESKTOP)


def test_assistant_answers_about_the_failed_job_from_its_record(
    signed_in: Page, shot: Shot, failed_job: dict[str, Any], fake_chat: ChatServer
) -> None:
    page = signed_in
    page.goto(page.url.split("#")[0] + "#/assistant")
    job_choice = page.get_by_label("About a job (optional)")
    expect(job_choice.locator(f"option[value='{failed_job['id']}']")).to_have_count(1)
    job_choice.select_option(failed_job["id"])
    expect(page.get_by_text("Error: ")).to_contain_text("TRAINYARD_WEIGHTS_DIR")
    question = "Why did my job fail?"
    page.get_by_label("Your question").fill(question)
    sent_before = len(fake_chat.requests)
    page.get_by_role("button", name="Ask").click()
    answer = page.get_by_role("region", name="Answer")
    expect(answer).to_contain_text(reply_to(question))
    sent = fake_chat.requests[sent_before:]
    assert len(sent) == 1
    system = sent[0]["body"]["messages"][0]["content"]
    assert failed_job["id"] in system and failed_job["error"] in system and '"status": "FAILED"' in system
    assert sent[0]["body"]["messages"][-1] == {"role": "user", "content": question}
    shot(page, "assistant")
    fits_a_phone(page)
    page.set_viewport_size(DESKTOP)


@pytest.fixture(scope="module")
def bare_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """No chat API configured; seed 004's /training answers 'pending' at once."""
    local = LocalStack(
        home=tmp_path_factory.mktemp("bare-console-stack") / "home",
        extra_env={"TRAINYARD_DIGITS_TRAINING_WAIT_SECONDS": "0"},
    )
    local.start()
    yield local
    local.stop()


def test_unconfigured_assistant_says_how_to_configure_it(
    page: Page, bare_stack: LocalStack, expected_http_errors: set[int]
) -> None:
    expected_http_errors.add(503)
    sign_in(page, bare_stack)
    page.goto(f"{bare_stack.url}/console/#/assistant")
    page.get_by_label("Your question").fill("Hello?")
    page.get_by_role("button", name="Ask").click()
    expect(page.get_by_text("The assistant is not set up on this Trainyard yet.")).to_be_visible()
    expect(
        page.get_by_text(re.compile("set TRAINYARD_CHAT_API_URL to an OpenAI-compatible API"))
    ).to_contain_text("TRAINYARD_CHAT_API_KEY")


def test_digits_training_the_route_stops_waiting_for_is_followed_to_its_accuracy(
    page: Page, bare_stack: LocalStack
) -> None:
    sign_in(page, bare_stack)
    page.goto(f"{bare_stack.url}/console/#/digits/train")
    page.get_by_label("Language").select_option("fr")  # the seed's own language
    page.get_by_label("Jeu d’entraînement (CSV)").set_input_files(csv_file("train.csv", 60, seed=3))
    page.get_by_label("Jeu de test (CSV)").set_input_files(csv_file("test.csv", 20, seed=4))
    page.get_by_label("Nombre d’époques").fill("1")
    page.get_by_role("button", name="Entraîner").click()
    expect(page.get_by_text(re.compile(r"L’entraînement continue : suivi de la tâche job_"))).to_be_visible()
    job_link = page.get_by_role("link", name=re.compile("^Tâche job_"))
    expect(job_link).to_have_attribute("href", re.compile("#/jobs/job_"))
    accuracy = page.get_by_text(re.compile(r"^Précision sur le jeu de test : \d+\.\d\d %$"))
    expect(accuracy).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    job_id = (job_link.get_attribute("href") or "").rsplit("/", 1)[-1]
    with bare_stack.client() as api:
        job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "SUCCEEDED"
    shown = float(accuracy.inner_text().split(":")[1].strip().rstrip(" %"))
    assert shown == pytest.approx(job["val_accuracy"] * 100, abs=0.01)
    page.get_by_label("Langue").select_option("en")
