"""Datasets through HTTP: the accepted layouts, and every bad input → 4xx naming the
problem, with nothing stored (no record, no blob, no temporary file)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.synthetic import class_folder_zip, labelled_images, shape_image, tar_gz_bytes, zip_bytes
from trainyard.bootstrap import Services


def upload(client: TestClient, data: bytes, name: str = "shapes", filename: str = "d.zip"):
    return client.post("/v1/datasets", data={"name": name}, files={"file": (filename, data)})


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def assert_nothing_stored(client: TestClient, services: Services) -> None:
    assert client.get("/v1/datasets").json()["items"] == []
    assert files_under(services.settings.blob_root) == []
    assert files_under(services.settings.tmp_root) == []


def test_class_folder_zip(client: TestClient) -> None:
    response = upload(client, class_folder_zip(4, seed=1))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["classes"] == ["circle", "square", "triangle"] and body["image_count"] == 12
    assert body["task"] == "classification" and body["name"] == "shapes"
    detail = client.get(f"/v1/datasets/{body['id']}").json()
    assert detail["class_counts"] == {c: {"unsplit": 4} for c in body["classes"]}


def test_train_val_tar_gz_inside_a_wrapping_folder(client: TestClient) -> None:
    images = labelled_images(3, seed=2)
    files = [
        (f"dataset/{'val' if i % 3 == 0 else 'train'}/{label}/{i}.png", data)
        for i, (label, data) in enumerate(images)
    ]
    response = upload(client, tar_gz_bytes(files), filename="d.tar.gz")
    assert response.status_code == 201, response.text
    counts = client.get(f"/v1/datasets/{response.json()['id']}").json()["class_counts"]
    assert sum(counts["circle"].values()) == 3 and set(counts["circle"]) <= {"train", "val"}


def test_hidden_files_and_macos_metadata_are_ignored(client: TestClient) -> None:
    images = labelled_images(2, seed=3)
    files = [(f"{label}/{i}.png", data) for i, (label, data) in enumerate(images)]
    files += [(".DS_Store", b"junk"), ("__MACOSX/circle/._0.png", b"junk"), ("circle/.hidden", b"x")]
    response = upload(client, zip_bytes(files))
    assert response.status_code == 201, response.text
    assert response.json()["image_count"] == 6


@pytest.mark.parametrize(
    "archive,expected",
    [
        (b"this is not a zip", "not a .zip, .tar.gz or .7z"),
        (b"PK\x03\x04" + b"\x00" * 40, "corrupt zip"),
        (
            zip_bytes(
                [
                    ("circle/a.png", shape_image("circle", __import__("random").Random(1))),
                    ("square/notes.txt", b"hello"),
                ]
            ),
            "square/notes.txt",
        ),
        (
            zip_bytes(
                [("circle/a.png", shape_image("circle", __import__("random").Random(1))), ("square/", b"")]
            ),
            "class 'square'",
        ),
        (
            zip_bytes([("circle/a.png", shape_image("circle", __import__("random").Random(1)))]),
            "at least 2 classes",
        ),
        (
            zip_bytes([("a.png", shape_image("circle", __import__("random").Random(1)))]),
            "a.png is not inside a class folder",
        ),
        (
            zip_bytes(
                [
                    ("circle/a.png", shape_image("circle", __import__("random").Random(1))),
                    ("square/b.png", shape_image("square", __import__("random").Random(2))[:60]),
                ]
            ),
            "square/b.png",
        ),
        (zip_bytes([("../evil/a.png", b"x")]), "unsafe path"),
    ],
    ids=[
        "not-archive",
        "corrupt-zip",
        "non-image",
        "empty-class",
        "one-class",
        "stray-file",
        "truncated-image",
        "zip-slip",
    ],
)
def test_bad_archives_are_refused_and_leave_nothing(
    client: TestClient, services: Services, archive: bytes, expected: str
) -> None:
    response = upload(client, archive)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert expected in response.json()["message"]
    assert_nothing_stored(client, services)


def test_missing_fields_name_the_field(client: TestClient) -> None:
    response = client.post("/v1/datasets", data={"name": "x"})
    assert response.status_code == 422 and "file" in response.json()["message"]


def test_upload_over_the_limit_is_413(services: Services, api_key: str) -> None:
    from trainyard.api.app import create_app

    services.settings = services.settings.model_copy(update={"max_inline_bytes": 2048})
    archive = class_folder_zip(10, seed=1)
    with TestClient(create_app(services)) as small:
        small.headers["Authorization"] = f"Bearer {api_key}"
        response = small.post("/v1/datasets", data={"name": "big"}, files={"file": ("d.zip", archive)})
        assert response.status_code == 413 and "inline limit" in response.json()["message"]
        assert "POST /v1/uploads" in response.json()["message"]  # where such a file goes instead
        assert files_under(services.settings.tmp_root) == []
        # ... and through the upload flow the same file is taken
        upload = small.post("/v1/uploads", json={"filename": "d.zip", "size_bytes": len(archive)}).json()
        assert small.put(upload["url"], content=archive).status_code == 200
        created = small.post("/v1/datasets", json={"name": "big", "upload_id": upload["upload_id"]})
        assert created.status_code == 201 and created.json()["image_count"] == 30


def test_append_images_with_base64(client: TestClient, services: Services) -> None:
    dataset = upload(client, class_folder_zip(2, seed=4)).json()
    png = shape_image("circle", __import__("random").Random(5))
    body = {
        "images": [
            {"image_b64": base64.b64encode(png).decode(), "label": "hexagon"},
            {
                "image_b64": "data:image/png;base64," + base64.b64encode(png).decode(),
                "label": "circle",
                "split": "val",
            },
        ]
    }
    response = client.post(f"/v1/datasets/{dataset['id']}/images", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["added"] == 2 and "hexagon" in response.json()["classes"]
    assert response.json()["image_count"] == 8


@pytest.mark.parametrize(
    "images,expected",
    [
        ([{"image_b64": "!!!not base64!!!", "label": "a"}], "images[0].image_b64: invalid base64"),
        ([{"image_b64": "aGVsbG8=", "label": "a"}], "images[0]: not a readable image"),
        (
            [
                {
                    "image_b64": base64.b64encode(
                        shape_image("circle", __import__("random").Random(1))
                    ).decode(),
                    "label": "",
                }
            ],
            "label must be a non-empty string",
        ),
        ([], "at least one image"),
        ("nope", "expected a list"),
    ],
)
def test_bad_appends_are_refused_and_add_nothing(
    client: TestClient, services: Services, images: object, expected: str
) -> None:
    dataset = upload(client, class_folder_zip(2, seed=4)).json()
    blobs_before = files_under(services.settings.blob_root)
    response = client.post(f"/v1/datasets/{dataset['id']}/images", json={"images": images})
    assert response.status_code == 422, response.text
    assert expected in response.json()["message"]
    assert client.get(f"/v1/datasets/{dataset['id']}").json()["image_count"] == 6
    assert files_under(services.settings.blob_root) == blobs_before


def test_delete_removes_record_and_files(client: TestClient, services: Services) -> None:
    dataset = upload(client, class_folder_zip(2, seed=4)).json()
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    assert_nothing_stored(client, services)


def test_dataset_list_paginates(client: TestClient) -> None:
    ids = [upload(client, class_folder_zip(1, seed=i), name=f"d{i}").json()["id"] for i in range(5)]
    first = client.get("/v1/datasets", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = client.get("/v1/datasets", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get("/v1/datasets", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    seen = [d["id"] for page in (first, second, third) for d in page["items"]]
    assert sorted(seen) == sorted(ids) and third["next_cursor"] is None
    assert client.get("/v1/datasets", params={"limit": 0}).status_code == 422


def test_requests_without_a_valid_key_are_401(client: TestClient) -> None:
    assert client.get("/v1/health").status_code == 200
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = client.get("/v1/datasets", headers=headers)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_a_decompression_bomb_image_is_refused(client: TestClient, services: Services) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buffer, format="PNG")  # 100 MP, a few KB compressed
    rng = __import__("random").Random(1)
    archive = zip_bytes([("a/bomb.png", buffer.getvalue()), ("b/ok.png", shape_image("square", rng))])
    response = upload(client, archive)
    assert response.status_code == 422 and "a/bomb.png" in response.json()["message"]
    assert_nothing_stored(client, services)


@pytest.mark.parametrize("task", ["tag", "embedder", "segmentation"])
def test_a_dataset_for_a_task_that_takes_no_dataset_is_refused(
    client: TestClient, services: Services, task: str
) -> None:
    response = client.post(
        "/v1/datasets",
        data={"name": "shapes", "task": task},
        files={"file": ("shapes.zip", class_folder_zip(2, seed=1), "application/zip")},
    )
    assert response.status_code == 422
    assert response.json()["message"] == "task: must be one of classification, pose, detection"
    assert_nothing_stored(client, services)
