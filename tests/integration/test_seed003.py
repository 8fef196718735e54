"""Seed 003 (custom tags, ../shared/seeds/003_*.txt) against the full app: every documented
request, the SDK envelope and its error codes, bad input on every route (nothing stored),
hostile state tars, and the acceptance: 20 positive + 20 negative synthetic images per tag
give held-out accuracy >= 90%, and retraining with more examples is no worse.

One app serves the module: its tenant's embedder (a real trainer job, about 5-10 s) is built
once; each tag training is a real job in the trainer venv (about a second).
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import JobStatus, Task
from trainyard.services.tags import ERROR_CODES, IMAGES, TAGS, TASKS
from trainyard.services.tenants import DEFAULT_TENANT
from trainyard.settings import Settings

SIZE = 96


# --- synthetic images -----------------------------------------------------------------------


def smooth_background(rng: np.random.Generator) -> np.ndarray:
    """A two-colour gradient with a little sensor noise, as a photo's background might be."""
    start, end = rng.integers(60, 200, 3), rng.integers(60, 200, 3)
    ramp = np.linspace(0, 1, SIZE)
    t = ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
    pixels = start * (1 - t) + end * t + rng.normal(0, 6, (SIZE, SIZE, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def red_object(rng: np.random.Generator, positive: bool) -> Image.Image:
    """Tag "red": a red circle or square; negatives hold a blue or green one."""
    image = Image.fromarray(smooth_background(rng))
    x, y, r = (int(v) for v in (rng.integers(20, 76), rng.integers(20, 76), rng.integers(8, 18)))
    colour = (220, 30, 30) if positive else ((30, 30, 220) if rng.random() < 0.5 else (30, 200, 30))
    draw = ImageDraw.Draw(image)
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x - r, y - r, x + r, y + r], fill=colour)
    return image


def striped(rng: np.random.Generator, positive: bool) -> Image.Image:
    """Tag "striped": horizontal stripes; negatives are dotted. Random colours and widths."""
    ground, ink = (tuple(int(c) for c in rng.integers(0, 255, 3)) for _ in range(2))
    image = Image.new("RGB", (SIZE, SIZE), ground)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(3, 8))
    if positive:
        for y in range(-int(rng.integers(0, 2 * width)), SIZE, 2 * width):
            draw.rectangle([0, y, SIZE, y + width - 1], fill=ink)
    else:
        for _ in range(30):
            x, y = (int(v) for v in rng.integers(0, SIZE, 2))
            half = width // 2 + 1
            draw.ellipse([x - half, y - half, x + half, y + half], fill=ink)
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def upload(data: bytes, name: str = "your_img.png") -> dict[str, Any]:
    return {"data": (name, data, "image/png")}


# --- the app ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    settings = Settings(
        home=tmp_path_factory.mktemp("seed003") / "home",
        max_inline_bytes=512 * 1024,
        tags_max_state_bytes=4 * 1024 * 1024,
        webhook_backoff_seconds=0.1,
    )
    services = bootstrap(settings)
    # no key: the seed's clients never sent one; locally they act for the default tenant
    with TestClient(create_app(services, background_work=True)) as client:
        yield client, services


@pytest.fixture
def client(seed_app: tuple[TestClient, Services]) -> TestClient:
    return seed_app[0]


@pytest.fixture
def services(seed_app: tuple[TestClient, Services]) -> Services:
    return seed_app[1]


def tenant_of(services: Services) -> str:
    return services.tenants.ensure_default_tenant()


def stored(services: Services) -> dict[str, list[str]]:
    """What the seed has recorded for the tenant, to check that a refusal stored nothing."""
    tenant = tenant_of(services)
    tags = [a.name for a in services.store.list_aliases(tenant, TAGS)]
    return {
        "images": [a.name for a in services.store.list_aliases(tenant, IMAGES)],
        "tags": tags,
        "examples": [
            f"{t}/{a.name}:{a.target}"
            for t in tags
            for a in services.store.list_aliases(tenant, f"003.examples/{t}")
        ],
        "tasks": [a.name for a in services.store.list_aliases(tenant, TASKS)],
        "blobs": services.blobs.list_keys(f"tenants/{tenant}/seed003/"),
    }


def assert_error(response: Any, status: int, code: str, mentions: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["message"] == code, body
    assert code in ERROR_CODES
    assert mentions.lower() in body["detail"].lower(), body


def add_image(client: TestClient, data: bytes, image_id: str | None = None) -> str:
    # the seed's python example: POST /custom/add[?image_id=] with files={'data': ...}
    url = "/custom/add" + (f"?image_id={image_id}" if image_id else "")
    response = client.post(url, files=upload(data))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and isinstance(body["image_id"], str)
    return str(body["image_id"])


def train_and_wait(client: TestClient, tag: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    response = client.get(f"/custom/train/{tag}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    task_id = response.json()["task_id"]
    seen = set()
    while True:
        status = client.get(f"/status/{task_id}").json()
        seen.add(status["status"])
        if status["status"] != "ongoing":
            break
        assert status["message"].startswith("training")  # `message` while ongoing
        assert time.perf_counter() - started < 300
        time.sleep(0.1)
    return status, time.perf_counter() - started


def add_examples(
    client: TestClient,
    tag: str,
    make: Callable[[np.random.Generator, bool], Image.Image],
    rng: np.random.Generator,
    count: int,
) -> None:
    for index in range(count):
        positive = index % 2 == 0
        image_id = add_image(client, png(make(rng, positive)))
        kind = "positive" if positive else "negative"
        response = client.get(f"/custom/assign/{image_id}/{kind}/{tag}")  # the seed's assign_image
        assert response.status_code == 200 and response.json()["status"] == "ok", response.text


def held_out_accuracy(
    client: TestClient,
    tag: str,
    make: Callable[[np.random.Generator, bool], Image.Image],
    rng: np.random.Generator,
    count: int,
) -> float:
    correct = 0
    for index in range(count):
        positive = index % 2 == 0
        body = client.post(f"/predict/custom/{tag}", files=upload(png(make(rng, positive)))).json()
        assert body["status"] == "ok" and set(body["custom"]) == {tag}
        correct += (body["custom"][tag] >= 0.5) == positive
    return correct / count


# --- the documented flow and the acceptance ---------------------------------------------------


def test_documented_flow_accuracy_and_fine_tuning(client: TestClient, services: Services) -> None:
    rng = np.random.default_rng(3)
    # add with and without image_id, as both documented forms
    named = add_image(client, png(red_object(rng, True)), image_id="my-image.1")
    assert named == "my-image.1"
    generated = add_image(client, png(red_object(rng, False)))
    assert generated.isdigit()  # "the system will generate a random ID number"
    assert client.get(f"/custom/assign/{named}/positive/red").json() == {
        "status": "ok",
        "image_id": named,
        "type": "positive",
        "tag": "red",
        "positives": 1,
        "negatives": 0,
    }
    client.get(f"/custom/assign/{generated}/negative/red")

    # acceptance: 20 positive + 20 negative per tag (2 above + 38 here for "red")
    add_examples(client, "red", red_object, rng, 38)
    add_examples(client, "striped", striped, rng, 40)
    timings = {}
    for tag in ("red", "striped"):
        status, timings[tag] = train_and_wait(client, tag)
        assert status["status"] == "ok", status
        assert status["tag"] == tag and status["positives"] == 20 and status["negatives"] == 20
        assert status["accuracy"] is not None and status["loss"] is not None
    accuracies = {
        tag: held_out_accuracy(client, tag, make, rng, 40)
        for tag, make in (("red", red_object), ("striped", striped))
    }
    print(f"\nseed 003 held-out accuracy, 20+20 training images: {accuracies}; train→ok seconds: {timings}")
    assert min(accuracies.values()) >= 0.9, accuracies

    # /predict/custom: every tag's score; /predict (seed 003's, under its prefix): plus the base model
    everything = client.post("/predict/custom", files=upload(png(red_object(rng, True)))).json()
    assert everything["status"] == "ok" and set(everything["custom"]) == {"red", "striped"}
    assert everything["custom"]["red"] > 0.5
    assert all(0.0 <= s <= 1.0 for s in everything["custom"].values())
    full = client.post("/seeds/003/predict", files=upload(png(red_object(rng, True)))).json()
    assert full["status"] == "ok" and set(full["custom"]) == {"red", "striped"}
    assert full["base"]["status"] == "error" and full["base"]["message"] == "base_model_unavailable"
    assert "weights" in full["base"]["detail"]

    # predictions for added images, all tags and one tag (the seed's get_predictions_added)
    on_added = client.get(f"/custom/predict/{named}").json()
    assert on_added["status"] == "ok" and set(on_added["custom"]) == {"red", "striped"}
    assert on_added["custom"]["red"] > 0.5
    one = client.get(f"/custom/predict/red/{generated}").json()
    assert one["status"] == "ok" and list(one["custom"]) == ["red"] and one["custom"]["red"] < 0.5

    # the fine-tuning loop: more examples, train again → no worse on a fresh held-out set
    evaluation_rng = np.random.default_rng(11)
    before = held_out_accuracy(client, "striped", striped, evaluation_rng, 40)
    add_examples(client, "striped", striped, rng, 40)
    status, seconds = train_and_wait(client, "striped")
    assert status["status"] == "ok" and status["positives"] == 40
    after = held_out_accuracy(client, "striped", striped, np.random.default_rng(11), 40)
    print(f"striped: 20+20 → {before:.3f}, 40+40 → {after:.3f}; retraining took {seconds:.2f} s (train→ok)")
    assert after >= before

    # state: export, then set it back (replaces the tenant's images and tags)
    exported = client.get("/get_state")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(exported.content)) as archive:
        names = set(archive.getnames())
        state = json.loads(archive.extractfile("state.json").read())  # type: ignore[union-attr]
    assert {"state.json", "tags/red.json", "tags/striped.json", f"images/{named}.png"} <= names
    assert set(state["tags"]) == {"red", "striped"} and named in state["tags"]["red"]["positive"]
    expected_score = on_added["custom"]["red"]
    client.get("/custom/delete/red")
    restored = client.post("/set_state", files={"data": ("state.tar", exported.content, "application/x-tar")})
    assert restored.json() == {
        "status": "ok",
        "images": len(state["images"]),
        "tags": ["red", "striped"],
        "needs_training": [],
    }
    again = client.get(f"/custom/predict/red/{named}").json()
    assert again["custom"]["red"] == pytest.approx(expected_score, abs=1e-6)

    # reset a model: the tag and its assignments go; its scores are no longer returned
    assert client.get("/custom/delete/red").json() == {"status": "ok", "tag": "red"}
    assert set(client.get(f"/custom/predict/{named}").json()["custom"]) == {"striped"}
    assert_error(client.get(f"/custom/predict/red/{named}"), 404, "tag_not_found")
    # tag jobs ran as jobs like any other
    jobs = services.store.list_jobs(tenant_of(services), 100, None).items
    assert {job.task for job in jobs} == {Task.TAG, Task.EMBEDDER}
    assert all(job.status is JobStatus.SUCCEEDED for job in jobs)


def test_a_failed_training_reports_training_error(client: TestClient, services: Services) -> None:
    rng = np.random.default_rng(5)
    ids = [add_image(client, png(red_object(rng, i % 2 == 0))) for i in range(2)]
    client.get(f"/custom/assign/{ids[0]}/positive/broken")
    client.get(f"/custom/assign/{ids[1]}/negative/broken")
    client.get(f"/custom/predict/{ids[0]}")  # embeds the image (cached beside it)
    tenant = tenant_of(services)
    key = next(
        k
        for k in services.blobs.list_keys(f"tenants/{tenant}/seed003/images/{ids[0]}/")
        if k.endswith(".npy")
    )
    services.blobs.put_bytes(key, b"not an array")  # the cached embedding is damaged
    status, _ = train_and_wait(client, "broken")
    assert status["status"] == "error" and status["message"] == "training_error"
    assert "unreadable" in status["detail"]
    assert_error(
        client.post("/predict/custom/broken", files=upload(png(red_object(rng, True)))),
        409,
        "model_not_trained",
    )
    client.get("/custom/delete/broken")


# --- bad input on every route: the documented form, nothing stored ------------------------------


def test_add_refusals_store_nothing(client: TestClient, services: Services) -> None:
    rng = np.random.default_rng(7)
    kept = add_image(client, png(red_object(rng, True)), image_id="kept")
    before = stored(services)
    original = services.blobs.get_bytes(f"tenants/{tenant_of(services)}/seed003/images/kept/image.png")
    assert_error(
        client.post("/custom/add", files=upload(b"GIF89a broken")), 422, "image_reading_error", "data"
    )
    assert_error(
        client.post("/custom/add", files=upload(png(red_object(rng, True))[:200])), 422, "image_reading_error"
    )
    assert_error(client.post("/custom/add"), 400, "missing_data")
    assert_error(client.post("/custom/add", data={"data": "not multipart"}), 400, "missing_data")
    assert_error(client.post("/custom/add", files={"data": (None, "a text field")}), 422, "missing_data")
    assert_error(
        client.post("/custom/add", files={"image": ("a.png", png(red_object(rng, True)), "image/png")}),
        422,
        "missing_data",
    )
    assert_error(
        client.post("/custom/add?image_id=../../etc", files=upload(png(red_object(rng, True)))),
        422,
        "invalid_image_id",
    )
    assert_error(
        client.post("/custom/add?image_id=", files=upload(png(red_object(rng, True)))),
        422,
        "invalid_image_id",
    )
    assert_error(
        client.post(f"/custom/add?image_id={kept}", files=upload(png(red_object(rng, False)))),
        409,
        "image_exists",
    )
    big = png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 600, 3)).astype(np.uint8)))
    assert_error(client.post("/custom/add", files=upload(big)), 413, "file_too_large")
    assert stored(services) == before
    assert (
        services.blobs.get_bytes(f"tenants/{tenant_of(services)}/seed003/images/kept/image.png") == original
    )


def test_route_refusals(client: TestClient, services: Services) -> None:
    rng = np.random.default_rng(8)
    image = add_image(client, png(red_object(rng, True)), image_id="lonely")
    before = stored(services)
    assert_error(client.get("/custom/assign/nope/positive/red2"), 404, "image_not_found", "nope")
    assert_error(
        client.get(f"/custom/assign/{image}/maybe/red2"), 422, "invalid_sample_type", "positive or negative"
    )
    assert_error(client.get(f"/custom/assign/{image}/positive/bad%20tag!"), 422, "invalid_tag")
    assert_error(client.get("/custom/train/never-assigned"), 404, "tag_not_found")
    assert_error(client.get("/status/no-such-task"), 404, "task_not_found")
    assert_error(client.get("/custom/delete/never-assigned"), 404, "tag_not_found")
    assert_error(
        client.post("/predict/custom/never-assigned", files=upload(png(red_object(rng, True)))),
        404,
        "tag_not_found",
    )
    assert_error(
        client.post("/predict/custom", files=upload(b"\x89PNG truncated")), 422, "image_reading_error"
    )
    assert_error(client.post("/predict/custom"), 400, "missing_data")
    assert_error(client.post("/seeds/003/predict", files=upload(b"nope")), 422, "image_reading_error")
    assert_error(client.get("/custom/predict/nope"), 404, "image_not_found")
    assert_error(client.get(f"/custom/predict/never-assigned/{image}"), 404, "tag_not_found")
    assert_error(client.get("/custom/train/..."), 422, "invalid_tag")
    assert stored(services) == before
    # a tag with positives only cannot train; nothing is launched
    client.get(f"/custom/assign/{image}/positive/one-sided")
    tasks = stored(services)["tasks"]
    assert_error(
        client.get("/custom/train/one-sided"), 422, "not_enough_samples", "1 positive and 0 negative"
    )
    assert_error(
        client.post("/predict/custom/one-sided", files=upload(png(red_object(rng, True)))),
        409,
        "model_not_trained",
    )
    assert stored(services)["tasks"] == tasks
    client.get("/custom/delete/one-sided")


# --- state tars --------------------------------------------------------------------------------


def tar_with(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, payload in members:
            archive.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def file_member(name: str, payload: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def special_member(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


STATE_JSON = json.dumps(
    {"schema": "trainyard.seed003-state/1", "embedder": None, "images": {}, "tags": {}}
).encode()


@pytest.mark.parametrize(
    ("members", "mentions"),
    [
        ([file_member("state.json", STATE_JSON), file_member("../evil.json", b"{}")], "unexpected member"),
        ([file_member("state.json", STATE_JSON), file_member("/etc/evil", b"x")], "unexpected member"),
        (
            [file_member("state.json", STATE_JSON), file_member("images/../../evil.png", b"x")],
            "unexpected member",
        ),
        (
            [
                file_member("state.json", STATE_JSON),
                special_member("images/a.png", tarfile.SYMTYPE, "/etc/passwd"),
            ],
            "link",
        ),
        (
            [
                file_member("state.json", STATE_JSON),
                special_member("images/b.png", tarfile.LNKTYPE, "state.json"),
            ],
            "link",
        ),
        ([file_member("state.json", STATE_JSON), special_member("images/c.png", tarfile.CHRTYPE)], "device"),
        (
            [file_member("state.json", STATE_JSON), special_member("images/d.png", tarfile.FIFOTYPE)],
            "device or fifo",
        ),
        ([file_member("images/x.png", b"x")], "state.json is missing"),
        ([file_member("state.json", b"{not json")], "not json"),
        (
            [
                file_member(
                    "state.json",
                    json.dumps(
                        {
                            "schema": "trainyard.seed003-state/1",
                            "images": {"a": {"file": "images/a.png"}},
                            "tags": {"t": {"positive": ["a"], "negative": ["ghost"]}},
                        }
                    ).encode(),
                ),
                file_member("images/a.png", png(Image.new("RGB", (8, 8)))),
            ],
            "every positive/negative must be an image id",
        ),
        (
            [
                file_member(
                    "state.json",
                    json.dumps(
                        {
                            "schema": "trainyard.seed003-state/1",
                            "images": {"a": {"file": "images/a.png"}},
                            "tags": {},
                        }
                    ).encode(),
                ),
                file_member("images/a.png", b"not an image"),
            ],
            "images/a.png",
        ),
    ],
)
def test_hostile_state_tars_change_nothing(
    client: TestClient, services: Services, members: list[tuple[tarfile.TarInfo, bytes | None]], mentions: str
) -> None:
    add_image(
        client, png(red_object(np.random.default_rng(9), True)), image_id=f"survivor-{uuid.uuid4().hex[:8]}"
    )
    before = stored(services)
    response = client.post(
        "/set_state", files={"data": ("state.tar", tar_with(*members), "application/x-tar")}
    )
    assert_error(response, 422, "state_error", mentions)
    assert stored(services) == before


def test_state_tar_size_caps(client: TestClient, services: Services, tmp_path: Path) -> None:
    before = stored(services)
    assert_error(
        client.post("/set_state", files={"data": ("s.tar", b"plainly not a tar", "application/x-tar")}),
        422,
        "state_error",
        "not a readable tar",
    )
    # over the cap uncompressed though small on the wire: a gzip bomb is refused while reading
    bomb = io.BytesIO()
    with tarfile.open(fileobj=bomb, mode="w:gz") as archive:
        info, payload = file_member("images/huge.png", bytes(5 * 1024 * 1024))
        archive.addfile(info, io.BytesIO(payload))
    assert len(bomb.getvalue()) < 100_000
    assert_error(
        client.post("/set_state", files={"data": ("s.tar.gz", bomb.getvalue(), "application/gzip")}),
        413,
        "file_too_large",
    )
    assert_error(
        client.post("/set_state", files={"data": ("s.tar", bytes(5 * 1024 * 1024), "application/x-tar")}),
        413,
        "file_too_large",
    )
    assert_error(client.post("/set_state"), 400, "missing_data")
    assert stored(services) == before
    assert not any(services.settings.tmp_root.iterdir())  # spooled uploads are removed


# --- routing and callers -------------------------------------------------------------------------


@pytest.mark.parametrize("root_predict", ["003", "004"])
def test_the_bare_predict_follows_root_predict(tmp_path: Path, root_predict: str) -> None:
    services = bootstrap(Settings(home=tmp_path / "home", root_predict=root_predict))  # type: ignore[arg-type]
    with TestClient(create_app(services)) as client:
        ours = client.post("/seeds/003/predict", files=upload(b"not an image")).json()
        assert ours["message"] == "image_reading_error"
        at_root = client.post("/predict", files=upload(b"not an image"))
        is_ours = at_root.headers.get("content-type", "").startswith("application/json") and (
            at_root.json().get("message") == "image_reading_error"
        )
        assert is_ours == (root_predict == "003"), at_root.text
        # the other seed-003 routes are at the root whatever the setting
        assert client.get("/status/nothing").json()["message"] == "task_not_found"


def test_keys_and_anonymous_callers(tmp_path: Path) -> None:
    services = bootstrap(Settings(home=tmp_path / "home", seed_anonymous_access=False))
    key = services.tenants.ensure_default_key(None, services.settings.home / "api_key")
    with TestClient(create_app(services)) as client:
        assert_error(client.get("/status/x"), 401, "unauthorized")
        assert_error(client.get("/status/x", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
        assert (
            client.get("/status/x", headers={"Authorization": f"Bearer {key}"}).json()["message"]
            == "task_not_found"
        )
        assert client.get("/status/x", headers={"Authorization": key}).json()["message"] == "task_not_found"
    assert DEFAULT_TENANT
