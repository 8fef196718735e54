"""Idempotency-Key on the creating routes (api/idempotency.py), through the real app, SQLite
store and files: the same key and body answer the first result and store nothing new; another
body is a 422 in the route's error form; no key behaves as before; keys are per tenant. The
seed routes that start trainings start no second job; a request that finds the first still in
progress is a 409; a stale claim is taken over by one retry only.

Launches are recorded, not run (tests/helpers.py's RecordingLauncher): these tests check
answers and job records, not trained models. Seed 003's embedder is the exception: training
a tag reads its embeddings, so that one job runs for real."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.helpers import RecordingLauncher
from tests.hostile import png
from tests.pose_data import synthetic_pose_data
from tests.synthetic import class_folder_zip
from tests.synthetic_digits import digit_rows, digits_csv
from trainyard.adapters.local.sqlite_store import SqliteJobStore
from trainyard.api.app import create_app
from trainyard.api.idempotency import CLAIM_STALE_AFTER, HEADER, claim
from trainyard.bootstrap import Services, _local_adapters, _wire
from trainyard.domain import Alias, ModelStatus, Task, utcnow
from trainyard.errors import Conflict
from trainyard.ports import JobLauncher, LaunchSpec
from trainyard.settings import Settings

Request = Callable[[TestClient, int], dict[str, Any]]  # (client, variant) → httpx keyword args


@dataclass
class LaunchRecorder(RecordingLauncher):
    """Records launches; runs only seed 003's embedder (`real`), whose model a tag's
    training needs before it can launch. `hold`, once cleared, keeps every launch waiting
    until it is set again: the request that launches is still in progress meanwhile."""

    real: JobLauncher | None = None
    hold: threading.Event = field(default_factory=threading.Event)
    waiting: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.hold.set()

    def launch(self, spec: LaunchSpec) -> str:
        if json.loads(spec.hyperparameters.get("task", "null")) == "embedder" and self.real is not None:
            return self.real.launch(spec)
        self.waiting.set()
        assert self.hold.wait(timeout=60), "the test never let the launch go on"
        return super().launch(spec)


def wired(settings: Settings, launcher: LaunchRecorder, store: SqliteJobStore | None = None) -> Services:
    """The composition root's services with `launcher` (and `store`, another process's view
    of the same database) in place of the local ones; the local launcher stays its `real`."""
    # seed 004's /training answers at once (202) instead of waiting for a job that never runs
    settings = settings.model_copy(
        update={"home": settings.home.resolve(), "digits_training_wait_seconds": 0}
    )
    adapters = _local_adapters(settings)
    launcher.real = adapters.launcher
    return _wire(settings, dataclasses.replace(adapters, launcher=launcher, store=store or adapters.store))


@pytest.fixture
def launcher() -> LaunchRecorder:
    return LaunchRecorder()


@pytest.fixture
def services(settings: Settings, launcher: LaunchRecorder) -> Services:
    return wired(settings, launcher)


@pytest.fixture
def quiet_client(services: Services, api_key: str) -> Iterator[TestClient]:
    """The full app without background workers: nothing here needs a job to run."""
    with TestClient(create_app(services)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {api_key}"
        yield test_client


def _dataset(client: TestClient) -> str:
    response = client.post(
        "/v1/datasets", data={"name": "base"}, files={"file": ("d.zip", class_folder_zip(2, 1))}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _finished_upload(client: TestClient, variant: int) -> str:
    archive = class_folder_zip(2, variant)
    made = client.post("/v1/uploads", json={"filename": "d.zip", "size_bytes": len(archive)})
    assert made.status_code == 201, made.text
    assert client.put(made.json()["url"], content=archive).status_code == 200
    return str(made.json()["upload_id"])


@dataclass
class Case:
    name: str
    path: Callable[[TestClient], str]
    request: Request
    count: Callable[[TestClient, Services], int]  # how many records this route has made
    id_field: str


def _datasets(client: TestClient, _: Services) -> int:
    return len(client.get("/v1/datasets", params={"limit": 100}).json()["items"])


def _images(client: TestClient, _: Services) -> int:
    return sum(d["image_count"] for d in client.get("/v1/datasets", params={"limit": 100}).json()["items"])


def _upload_files(_: TestClient, services: Services) -> int:
    return sum(1 for p in services.settings.home.rglob("*") if "upload" in str(p) and p.is_file())


def _endpoints(client: TestClient, _: Services) -> int:
    return len(client.get("/v1/webhook-endpoints").json()["items"])


def _seed002_projects(_: TestClient, services: Services) -> int:
    return len(services.store.list_aliases(services.tenants.ensure_default_tenant(), "002.project"))


def _seed002_start(variant: int) -> dict[str, Any]:
    """A training whose download fails in the background (nothing listens at the Azure
    endpoint): the answer, and the project it claims, are what the key guards."""
    return {
        "json": {
            "profile_id": "prof",
            "project_name": f"teeth{variant}",
            "model_type": "classification",
            "storage_type": "azure",
            "container": "data",
            "folder": "teeth",
            "zipped": False,
            "export": ["onnx"],
            "azure_connection_string": "DefaultEndpointsProtocol=http;AccountName=acct;"
            "AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/acct;",
        }
    }


def _tag_images(_: TestClient, services: Services) -> int:
    return len(services.store.list_aliases(services.tenants.ensure_default_tenant(), "003.image"))


CASES = [
    Case(
        "dataset multipart",
        lambda c: "/v1/datasets",
        lambda c, v: {"data": {"name": f"d{v}"}, "files": {"file": ("d.zip", class_folder_zip(2, 1))}},
        _datasets,
        "id",
    ),
    Case(
        "dataset from upload",
        lambda c: "/v1/datasets",
        lambda c, v: {"json": {"name": f"d{v}", "upload_id": _finished_upload(c, v)}},
        _datasets,
        "id",
    ),
    Case(
        "images",
        lambda c: f"/v1/datasets/{_dataset(c)}/images",
        lambda c, v: {
            "json": {"images": [{"image_b64": base64.b64encode(png(16 + v, 16)).decode(), "label": "circle"}]}
        },
        _images,
        "id",
    ),
    Case(
        "upload",
        lambda c: "/v1/uploads",
        lambda c, v: {"json": {"filename": f"d{v}.zip", "size_bytes": 1000}},
        _upload_files,
        "upload_id",
    ),
    Case(
        "webhook endpoint",
        lambda c: "/v1/webhook-endpoints",
        lambda c, v: {"json": {"url": f"https://127.0.0.1:9/hook{v}"}},
        _endpoints,
        "id",
    ),
    Case(
        "seed 003 /custom/add",
        lambda c: "/custom/add",
        lambda c, v: {"files": {"data": ("img.png", png(20 + v, 20), "image/png")}},
        _tag_images,
        "image_id",
    ),
    Case(
        "seed 002 /starttraining/",
        lambda c: "/starttraining/",
        lambda c, v: _seed002_start(v),
        _seed002_projects,
        "project_name",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_key_and_body_answers_the_first_result_and_stores_nothing_new(
    quiet_client: TestClient, services: Services, case: Case
) -> None:
    path = case.path(quiet_client)
    kwargs = case.request(quiet_client, 1)
    before = case.count(quiet_client, services)
    first = quiet_client.post(path, headers={"Idempotency-Key": f"k-{case.name}"}, **kwargs)
    assert 200 <= first.status_code < 300, first.text
    made = case.count(quiet_client, services)
    assert made > before
    again = quiet_client.post(path, headers={"Idempotency-Key": f"k-{case.name}"}, **kwargs)
    assert again.status_code == first.status_code
    assert again.json()[case.id_field] == first.json()[case.id_field]
    assert case.count(quiet_client, services) == made


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_key_with_another_body_is_a_422_naming_the_key(
    quiet_client: TestClient, services: Services, case: Case
) -> None:
    path = case.path(quiet_client)
    first = quiet_client.post(path, headers={"Idempotency-Key": "shared"}, **case.request(quiet_client, 1))
    assert 200 <= first.status_code < 300, first.text
    made = case.count(quiet_client, services)
    other = quiet_client.post(path, headers={"Idempotency-Key": "shared"}, **case.request(quiet_client, 2))
    assert other.status_code == 422
    assert "Idempotency-Key" in other.text  # the reason, in whatever form the route answers
    assert case.count(quiet_client, services) == made


@pytest.mark.parametrize("case", CASES[:2] + CASES[3:4], ids=[c.name for c in CASES[:2] + CASES[3:4]])
def test_without_a_key_each_request_makes_a_new_record(
    quiet_client: TestClient, services: Services, case: Case
) -> None:
    path = case.path(quiet_client)
    ids = {quiet_client.post(path, **case.request(quiet_client, 1)).json()[case.id_field] for _ in range(2)}
    assert len(ids) == 2


def test_two_tenants_with_the_same_key_are_independent(quiet_client: TestClient, services: Services) -> None:
    _, _, other_key = services.tenants.create_tenant("other")
    request = {"data": {"name": "d"}, "files": {"file": ("d.zip", class_folder_zip(2, 1))}}
    mine = quiet_client.post("/v1/datasets", headers={"Idempotency-Key": "same"}, **request)
    theirs = quiet_client.post(
        "/v1/datasets", headers={"Idempotency-Key": "same", "Authorization": f"Bearer {other_key}"}, **request
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_failed_request_keeps_nothing_so_its_retry_runs(quiet_client: TestClient) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    broken = quiet_client.post(
        "/v1/datasets", headers=headers, data={"name": "d"}, files={"file": ("d.zip", b"not a zip")}
    )
    assert broken.status_code in (400, 422)
    # the same key and body fail again for the same reason (not replayed, not "in progress")
    assert (
        quiet_client.post(
            "/v1/datasets", headers=headers, data={"name": "d"}, files={"file": ("d.zip", b"not a zip")}
        ).json()
        == broken.json()
    )
    fixed = quiet_client.post(
        "/v1/datasets", headers=headers, data={"name": "d"}, files={"file": ("d.zip", class_folder_zip(2, 1))}
    )
    assert fixed.status_code == 201


def test_a_replayed_webhook_registration_never_stores_the_secret(
    quiet_client: TestClient, services: Services
) -> None:
    headers = {"Idempotency-Key": "hook"}
    first = quiet_client.post("/v1/webhook-endpoints", headers=headers, json={"url": "https://127.0.0.1:9/h"})
    assert first.json()["secret"].startswith("whsec_")
    again = quiet_client.post("/v1/webhook-endpoints", headers=headers, json={"url": "https://127.0.0.1:9/h"})
    assert again.json()["id"] == first.json()["id"] and "secret" not in again.json()
    assert first.json()["secret"] not in (services.settings.home / "trainyard.db").read_bytes().decode(
        "latin-1"
    )


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "na\xefve".encode("latin-1")])
def test_a_malformed_key_is_refused(quiet_client: TestClient, key: str | bytes) -> None:
    response = quiet_client.post(
        "/v1/uploads", headers={"Idempotency-Key": key}, json={"filename": "a.zip", "size_bytes": 10}
    )
    assert response.status_code == 422 and "Idempotency-Key" in response.json()["message"]


def test_a_seed_route_refuses_in_its_own_form(quiet_client: TestClient) -> None:
    headers = {"Idempotency-Key": "seed-key"}
    first = quiet_client.post(
        "/custom/add", headers=headers, files={"data": ("a.png", png(20, 20), "image/png")}
    )
    assert first.json()["status"] == "ok"
    # served again under its prefix: the same operation, so the same key space
    other = quiet_client.post(
        "/seeds/003/custom/add", headers=headers, files={"data": ("a.png", png(24, 24), "image/png")}
    )
    assert other.status_code == 422 and set(other.json()) == set(
        quiet_client.post("/custom/add", files={"data": ("x.txt", b"no", "text/plain")}).json()
    )


# --- the seed routes that start trainings ------------------------------------------------------

Send = Callable[[int, str], httpx.Response]  # (variant, key) → the answer
POSE_CONFIG = {"test_fraction": 0.2, "num_epochs": 2, "learning_rate": 1e-4, "backbone_model": "resnet",
               "heads_sigma": 1.5, "heads_output_stride": 4}  # fmt: skip


@dataclass
class Stack:
    client: TestClient
    services: Services
    animal: Callable[[], Path]  # seed 001's 7z dataset and video, made when a case needs them

    def jobs(self) -> int:
        """The jobs the routes started (the embedder a tag's training needs is not one)."""
        page = self.services.store.list_jobs(self.services.tenants.ensure_default_tenant(), 100, None)
        return sum(1 for job in page.items if job.task is not Task.EMBEDDER)

    def mark_trained(self, model_id: str, **changes: Any) -> None:
        """What a finished training's events leave: the model ready (nothing ran here)."""
        model = self.services.store.get_model(self.services.tenants.ensure_default_tenant(), model_id)
        assert model is not None
        self.services.store.update_model(model.model_copy(update={"status": ModelStatus.READY, **changes}))


@pytest.fixture
def stack(quiet_client: TestClient, services: Services, request: pytest.FixtureRequest) -> Stack:
    return Stack(quiet_client, services, lambda: request.getfixturevalue("animal"))


@pytest.fixture(scope="module")
def animal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_pose_data(tmp_path_factory.mktemp("animal"), "7z", frames=8, video_frames=4)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _seed000_train(stack: Stack) -> Send:
    _dataset(stack.client)
    number = stack.client.get("/datasets").json()[0]["id"]
    return lambda v, key: stack.client.post(
        "/models/train", headers={HEADER: key}, json={"model_name": f"m{v}", "dataset_id": number}
    )


def _seed000_feed(stack: Stack) -> Send:
    trained = _seed000_train(stack)(1, "the base version")
    assert trained.status_code == 200, trained.text
    stack.mark_trained(
        trained.json()["model_id"], exports=["keras"], manifest={"exports": {"keras": "model.keras"}}
    )
    number = trained.json()["id"]
    return lambda v, key: stack.client.put(
        f"/models/feed/{number}",
        headers={HEADER: key},
        json={"images": [{"image_b64": _b64(png(20 + v, 20)), "label": "circle"}]},
    )


def _seed001_train(stack: Stack) -> Send:
    dataset = _b64((stack.animal() / "dataset.7z").read_bytes())
    return lambda v, key: stack.client.post(
        "/api/train-network",
        headers={HEADER: key},
        json={"training_dataset": dataset, "training_config": {**POSE_CONFIG, "num_epochs": v + 1}},
    )


def _seed001_video(stack: Stack) -> Send:
    trained = _seed001_train(stack)(1, "the model")
    assert trained.status_code == 200, trained.text
    uid = trained.json()["model_uid"]
    stack.mark_trained(stack.services.store.get_alias("default", "001.model", uid).target)  # type: ignore[union-attr]
    video = _b64((stack.animal() / "test_video.mp4").read_bytes())
    return lambda v, key: stack.client.post(
        "/api/video-inference",
        headers={HEADER: key},
        json={"file_name": f"rabbit{v}.mp4", "model_uid": uid, "video_base64": video},
    )


def _seed003_train(stack: Stack) -> Send:
    """Two tags ("tag1", "tag2"), each with a positive and a negative image; the variant is
    the tag trained (a GET: its path is its body)."""
    images = [stack.client.post("/custom/add", files={"data": ("i.png", png(20 + n, 20), "image/png")})
              for n in range(2)]  # fmt: skip
    for tag in ("tag1", "tag2"):
        for image, kind in zip(images, ("positive", "negative"), strict=True):
            assigned = stack.client.get(f"/custom/assign/{image.json()['image_id']}/{kind}/{tag}")
            assert assigned.json()["status"] == "ok", assigned.text
    return lambda v, key: stack.client.get(f"/custom/train/tag{v}", headers={HEADER: key})


def _seed004_training(stack: Stack) -> Send:
    train, test = (
        digits_csv(digit_rows(20, seed=1), header=True),
        digits_csv(digit_rows(10, seed=2), header=False),
    )
    return lambda v, key: stack.client.post(
        "/training",
        headers={HEADER: key},
        files={"file1": ("train.csv", train, "text/csv"), "file2": ("test.csv", test, "text/csv")},
        data={"epoch": str(v)},
    )


def _job_in_page(response: httpx.Response) -> str:
    found = re.search(r'data-job-id="([^"]+)"', response.text)
    assert found, response.text
    return found.group(1)


def _body(response: httpx.Response) -> Any:
    """What an answer says: its JSON value (a replay may space it differently), or its text."""
    return response.json() if response.headers["content-type"] == "application/json" else response.text


@dataclass
class TrainingCase:
    name: str
    prepare: Callable[[Stack], Send]  # what the route needs first (a dataset, a model, tags)
    job_of: Callable[[httpx.Response], str]  # what in the answer names the training it started
    error_fields: frozenset[str]  # the seed's JSON error form; empty: it answers an HTML page


def _answer_field(name: str) -> Callable[[httpx.Response], str]:
    return lambda response: str(response.json()[name])


SEED000_ERROR, SEED001_ERROR = frozenset({"message"}), frozenset({"error"})
SEED003_ENVELOPE = frozenset({"status", "message", "detail"})
TRAINING_CASES = [
    TrainingCase("seed 000 POST /models/train", _seed000_train, _answer_field("job_id"), SEED000_ERROR),
    TrainingCase("seed 000 PUT /models/feed", _seed000_feed, _answer_field("job_id"), SEED000_ERROR),
    TrainingCase("seed 001 /api/train-network", _seed001_train, _answer_field("model_uid"), SEED001_ERROR),
    TrainingCase("seed 001 /api/video-inference", _seed001_video, _answer_field("results_id"), SEED001_ERROR),
    TrainingCase("seed 003 /custom/train", _seed003_train, _answer_field("task_id"), SEED003_ENVELOPE),
    TrainingCase("seed 004 /training", _seed004_training, _job_in_page, frozenset()),
]


@pytest.mark.parametrize("case", TRAINING_CASES, ids=[c.name for c in TRAINING_CASES])
def test_a_training_route_retried_with_its_key_answers_the_first_result_and_starts_no_second_job(
    stack: Stack, launcher: LaunchRecorder, case: TrainingCase
) -> None:
    send = case.prepare(stack)
    before, launched = stack.jobs(), len(launcher.launched)
    first = send(1, "train-once")
    assert 200 <= first.status_code < 300, first.text
    assert stack.jobs() == before + 1 and len(launcher.launched) == launched + 1
    again = send(1, "train-once")
    assert (again.status_code, _body(again)) == (first.status_code, _body(first))
    assert case.job_of(again) == case.job_of(first)
    assert stack.jobs() == before + 1 and len(launcher.launched) == launched + 1


@pytest.mark.parametrize("case", TRAINING_CASES, ids=[c.name for c in TRAINING_CASES])
def test_a_training_route_refuses_its_key_with_another_body_in_its_own_error_form(
    stack: Stack, case: TrainingCase
) -> None:
    send = case.prepare(stack)
    assert 200 <= send(1, "shared").status_code < 300
    made = stack.jobs()
    other = send(2, "shared")
    assert other.status_code == 422 and HEADER in other.text
    assert stack.jobs() == made
    if case.error_fields:
        assert set(other.json()) == case.error_fields
    else:  # seed 004 answers pages
        assert other.headers["content-type"].startswith("text/html") and 'class="error"' in other.text


# --- requests that overlap ------------------------------------------------------------------


def test_a_request_while_the_first_with_its_key_runs_is_a_409_and_then_the_first_answer_replays(
    services: Services, launcher: LaunchRecorder, api_key: str
) -> None:
    """Two clients against one app: the first request is held inside its launch while the
    second, with the same key and body, arrives."""
    request = {"headers": {HEADER: "overlap"}, "json": {"model_name": "m", "dataset_id": 1}}

    async def overlap() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(services))
        auth = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://app", headers=auth) as client:
            made = await client.post(
                "/v1/datasets", data={"name": "d"}, files={"file": ("d.zip", class_folder_zip(2, 1))}
            )
            assert made.status_code == 201, made.text
            assert [d["id"] for d in (await client.get("/datasets")).json()] == [1]  # numbered when listed
            launcher.hold.clear()
            first = asyncio.create_task(client.post("/models/train", **request))
            assert await asyncio.to_thread(launcher.waiting.wait, 30)
            second = await client.post("/models/train", **request)
            launcher.hold.set()
            return second, await first, await client.post("/models/train", **request)

    second, first, third = asyncio.run(overlap())
    assert second.status_code == 409 and "still in progress" in second.json()["message"]
    assert HEADER in second.json()["message"]
    assert first.status_code == 200, first.text
    assert third.status_code == 200 and third.json() == first.json()
    assert len(launcher.launched) == 1
    assert [j.id for j in services.store.list_jobs("default", 100, None).items] == [first.json()["job_id"]]


class ReleasedMeanwhile(SqliteJobStore):
    """The claim's holder fails, and releases it, just after this store's insert found it."""

    def put_alias(self, alias: Alias) -> None:
        try:
            super().put_alias(alias)
        except Conflict:
            self.delete_alias(alias.tenant_id, alias.namespace, alias.name)
            raise


def test_a_claim_released_between_our_insert_and_read_is_a_409_and_the_retry_runs(
    services: Services,
) -> None:
    held = claim(services, "default", "idempotency:test", "k", "fingerprint")
    assert held.replayed is None
    racing = dataclasses.replace(services, store=ReleasedMeanwhile(services.settings.database_path))
    with pytest.raises(Conflict, match="just failed; retry"):
        claim(racing, "default", "idempotency:test", "k", "fingerprint")
    assert services.store.get_alias("default", "idempotency:test", "k") is None
    retry = claim(services, "default", "idempotency:test", "k", "fingerprint")
    assert retry.replayed is None  # a fresh claim: this request runs
    stored = services.store.get_alias("default", "idempotency:test", "k")
    assert stored is not None and stored.data["state"] == "in_progress"


class ReadTogether(SqliteJobStore):
    """Another API process's store: its first read of an idempotency claim waits until the
    other process has read it too, so both find the same stale claim before either writes."""

    def __init__(self, path: Path, barrier: threading.Barrier) -> None:
        super().__init__(path)
        self._barrier = barrier
        self._waited = False

    def get_alias(self, tenant_id: str, namespace: str, name: str) -> Alias | None:
        found = super().get_alias(tenant_id, namespace, name)
        if namespace.startswith("idempotency:") and not self._waited:
            self._waited = True
            self._barrier.wait(timeout=30)
        return found


def test_a_stale_claim_is_taken_over_by_one_of_two_retries_and_the_other_gets_409(
    settings: Settings, services: Services, launcher: LaunchRecorder, quiet_client: TestClient
) -> None:
    request = {"headers": {HEADER: "died"}, "json": {"model_name": "m", "dataset_id": 1}}
    _dataset(quiet_client)
    assert [d["id"] for d in quiet_client.get("/datasets").json()] == [1]  # numbered when listed
    assert quiet_client.post("/models/train", **request).status_code == 200
    # its process dies mid-way, long ago: the claim is left in progress
    namespace = "idempotency:seeds.seed000.train_model"  # "idempotency:<route's function>"
    record = services.store.get_alias("default", namespace, "died")
    assert record is not None and record.data["state"] == "done"
    services.store.update_alias(
        record.model_copy(
            update={
                "data": {"fingerprint": record.data["fingerprint"], "state": "in_progress"},
                "updated_at": utcnow() - CLAIM_STALE_AFTER - timedelta(minutes=1),
            }
        )
    )
    jobs, launches = len(services.store.list_jobs("default", 100, None).items), len(launcher.launched)

    barrier = threading.Barrier(2)
    processes = [
        TestClient(
            create_app(wired(settings, launcher, ReadTogether(services.settings.database_path, barrier)))
        )
        for _ in range(2)
    ]
    answers: list[httpx.Response] = []

    def retry(client: TestClient) -> None:
        client.headers["Authorization"] = quiet_client.headers["Authorization"]
        answers.append(client.post("/models/train", **request))

    threads = [threading.Thread(target=retry, args=(client,)) for client in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    taker = next(a for a in answers if a.status_code == 200)
    loser = next(a for a in answers if a.status_code == 409)
    assert "still in progress" in loser.json()["message"]
    # the request ran once more (its first run's answer was never stored), and only once
    assert len(services.store.list_jobs("default", 100, None).items) == jobs + 1
    assert len(launcher.launched) == launches + 1
    assert quiet_client.post("/models/train", **request).json() == taker.json()


def test_a_request_that_outlived_its_claim_neither_answers_for_nor_releases_its_successor(
    services: Services,
) -> None:
    tenant = services.tenants.ensure_default_tenant()
    slow = claim(services, tenant, "idempotency:test", "late", "body-a")
    # the claim went stale and a retry took it over (what claim() does after CLAIM_STALE_AFTER)
    held = services.store.get_alias(tenant, "idempotency:test", "late")
    assert held is not None
    successor = held.model_copy(update={"updated_at": utcnow() + timedelta(seconds=1)})
    assert services.store.replace_alias(held, successor)
    slow.remember({"id": "from the slow request"}, 201)
    slow.release()
    stored = services.store.get_alias(tenant, "idempotency:test", "late")
    assert stored is not None and stored.data["state"] == "in_progress"  # still the successor's
    with pytest.raises(Conflict):
        claim(services, tenant, "idempotency:test", "late", "body-a")


def test_a_released_claim_is_taken_by_the_next_request_whatever_its_body(services: Services) -> None:
    tenant = services.tenants.ensure_default_tenant()
    failed = claim(services, tenant, "idempotency:test", "again", "body-a")
    failed.release()
    retry = claim(services, tenant, "idempotency:test", "again", "body-b")
    assert retry.replayed is None
    retry.remember({"id": "b"}, 201)
    replay = claim(services, tenant, "idempotency:test", "again", "body-b")
    assert replay.replayed is not None and json.loads(bytes(replay.replayed.body)) == {"id": "b"}
