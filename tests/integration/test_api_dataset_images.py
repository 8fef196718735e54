"""Browsing a dataset's pictures through HTTP (GET /v1/datasets/{id}/images and
.../images/{image_id}/content): classification images with their class and split, detection
images with their boxes, a pose dataset's sample frames with their keypoints (drawn from the
videos by the real pose checker); pages that cover the whole list once, the class filter,
the bytes as uploaded, and another tenant's dataset or picture is a 404. On AWS (moto) the
content is a 307 to a presigned URL of the very object."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.aws_fixtures import TEST_REGION, aws_backend_on_moto
from tests.pose_data import write_labels
from tests.synthetic import labelled_images, zip_bytes
from tests.synthetic_detection import CLASSES, archive_bytes, coco_files, detection_samples
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import Dataset, Task, new_id
from trainyard.settings import Settings

IMAGES = labelled_images(3, seed=7)  # circle, square, triangle: 3 each


def upload(client: TestClient, data: bytes, task: str = "classification", filename: str = "d.zip") -> Any:
    response = client.post(
        "/v1/datasets", data={"name": "browse", "task": task}, files={"file": (filename, data)}
    )
    assert response.status_code == 201, response.text
    return response.json()


def all_pages(client: TestClient, path: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        response = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        pages.append(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages


@pytest.fixture
def classification(client: TestClient) -> dict[str, Any]:
    files = [
        (f"{'val' if i % 3 == 2 else 'train'}/{label}/{i}.png", data)
        for i, (label, data) in enumerate(IMAGES)
    ]
    return upload(client, zip_bytes(files))


def test_classification_images_come_in_pages_that_cover_each_image_once(
    client: TestClient, classification: dict[str, Any]
) -> None:
    pages = all_pages(client, f"/v1/datasets/{classification['id']}/images", limit=4)
    assert [len(page) for page in pages] == [4, 4, 1]
    images = [image for page in pages for image in page]
    assert len({image["id"] for image in images}) == 9
    assert sorted(image["label"] for image in images) == sorted(label for label, _ in IMAGES)
    assert {image["split"] for image in images} == {"train", "val"}
    assert all(set(image) == {"id", "label", "split", "width", "height"} for image in images)
    assert all((image["width"], image["height"]) == (48, 48) for image in images)


def test_the_class_filter_and_the_bytes_as_uploaded(
    client: TestClient, classification: dict[str, Any]
) -> None:
    path = f"/v1/datasets/{classification['id']}/images"
    squares = client.get(path, params={"label": "square"}).json()
    assert [image["label"] for image in squares["items"]] == ["square"] * 3 and squares["next_cursor"] is None
    assert client.get(path, params={"label": "hexagon"}).json() == {"items": [], "next_cursor": None}
    contents = []
    for image in squares["items"]:
        response = client.get(f"{path}/{image['id']}/content")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        contents.append(response.content)
    assert sorted(contents) == sorted(data for label, data in IMAGES if label == "square")


def test_a_cursor_from_another_listing_is_a_bad_request(
    client: TestClient, classification: dict[str, Any]
) -> None:
    path = f"/v1/datasets/{classification['id']}/images"
    first = client.get(path, params={"limit": 2}).json()
    other_class = next(c for c in ("circle", "square", "triangle") if c != first["items"][-1]["label"])
    response = client.get(path, params={"label": other_class, "cursor": first["next_cursor"]})
    assert response.status_code == 400 and "cursor" in response.json()["message"]
    assert client.get(path, params={"cursor": "garbage"}).status_code == 400


def test_another_tenants_dataset_and_pictures_are_not_found(
    client: TestClient, services: Services, classification: dict[str, Any]
) -> None:
    path = f"/v1/datasets/{classification['id']}/images"
    image_id = client.get(path).json()["items"][0]["id"]
    _, _, other_key = services.tenants.create_tenant("other")
    other = {"Authorization": f"Bearer {other_key}"}
    assert client.get(path, headers=other).status_code == 404
    assert client.get(f"{path}/{image_id}/content", headers=other).status_code == 404
    assert client.get(f"{path}/img_0000000000000000/content").status_code == 404
    assert client.get("/v1/datasets/ds_0000000000000000/images").status_code == 404


def test_detection_images_carry_their_boxes_in_pixels(client: TestClient) -> None:
    samples = detection_samples(5, seed=3, width=96, height=64)
    dataset = upload(client, archive_bytes(coco_files(samples)), task="detection")
    path = f"/v1/datasets/{dataset['id']}/images"
    images = [image for page in all_pages(client, path, limit=2) for image in page]
    by_source = {image["source"]: image for image in images}
    assert sorted(by_source) == sorted(f"images/{s.name}" for s in samples)
    for sample in samples:
        image = by_source[f"images/{sample.name}"]
        assert (image["width"], image["height"], image["label"]) == (96, 64, None)
        assert image["boxes"] == [
            {"label": b.label, "box": [b.x_min, b.y_min, b.x_max, b.y_max]} for b in sample.boxes
        ]
        content = client.get(f"{path}/{image['id']}/content")
        assert content.headers["content-type"] == "image/png" and content.content == sample.png
    wanted = CLASSES[0]
    with_circles = client.get(path, params={"label": wanted}).json()["items"]
    assert {i["source"] for i in with_circles} == {
        f"images/{s.name}" for s in samples if any(b.label == wanted for b in s.boxes)
    }


@pytest.fixture(scope="module")
def pose_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_labels(tmp_path_factory.mktemp("pose"), frames=3)


def test_pose_sample_frames_come_with_each_instances_points(client: TestClient, pose_labels: Path) -> None:
    response = client.post(
        "/v1/datasets",
        data={"name": "worms", "task": "pose"},
        files=[
            ("file", ("labels.slp", pose_labels.read_bytes())),
            ("file", ("clip.mp4", (pose_labels.parent / "clip.mp4").read_bytes())),
        ],
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    path = f"/v1/datasets/{dataset['id']}/images"
    frames = client.get(path).json()["items"]
    assert [frame["frame"] for frame in frames] == [0, 1, 2]
    assert dataset["samples"] == [{k: v for k, v in f.items() if k not in ("label", "split")} for f in frames]
    for frame in frames:
        assert frame["video"] == "clip.mp4" and (frame["width"], frame["height"]) == (32, 32)
        assert frame["instances"] == [{"skeleton": 0, "points": [[10.0, 10.0], [18.0, 18.0]]}]
        content = client.get(f"{path}/{frame['id']}/content")
        assert content.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(content.content))
        assert picture.size == (32, 32) and picture.convert("L").getpixel((12, 12)) > 100  # the square
    refused = client.get(path, params={"label": "head"})
    assert refused.status_code == 422 and "no class" in refused.json()["message"]


def test_a_pose_dataset_made_before_samples_were_kept_lists_none(
    client: TestClient, services: Services
) -> None:
    details = {"labels": "labels.slp", "video_files": [], "skeletons": [], "labeled_frames": 2}
    older = Dataset(
        id=new_id("ds"),
        tenant_id="default",
        name="older",
        task=Task.POSE,
        classes=["head"],
        image_count=2,
        details=details,
    )
    services.store.create_dataset(older, [])
    assert client.get(f"/v1/datasets/{older.id}/images").json() == {"items": [], "next_cursor": None}
    assert client.get(f"/v1/datasets/{older.id}/images/sample-1/content").status_code == 404


@pytest.fixture
def aws_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    with aws_backend_on_moto(
        monkeypatch,
        home=tmp_path / "home",
        launcher="sagemaker",
        datasets_bucket="datasets",
        artifacts_bucket="art",
    ):
        services = bootstrap(Settings())
        key = services.tenants.ensure_default_key(None, services.settings.home / "api_key")
        with TestClient(create_app(services)) as api:
            api.headers["Authorization"] = f"Bearer {key}"
            yield api


def test_on_aws_the_content_is_a_redirect_to_the_stored_object(aws_client: TestClient) -> None:
    dataset = upload(
        aws_client, zip_bytes([(f"{label}/{i}.png", data) for i, (label, data) in enumerate(IMAGES)])
    )
    image = aws_client.get(f"/v1/datasets/{dataset['id']}/images", params={"label": "circle"}).json()[
        "items"
    ][0]
    response = aws_client.get(
        f"/v1/datasets/{dataset['id']}/images/{image['id']}/content", follow_redirects=False
    )
    assert response.status_code == 307
    location = urlparse(response.headers["location"])
    assert "X-Amz-Signature=" in location.query or "Signature=" in location.query
    key = location.path.lstrip("/").removeprefix("datasets/")
    stored = boto3.client("s3", region_name=TEST_REGION).get_object(Bucket="datasets", Key=key)["Body"].read()
    assert stored in [data for label, data in IMAGES if label == "circle"]
