from __future__ import annotations

from pathlib import Path

from trainyard.adapters.local.disk_blobs import DiskBlobStore
from trainyard.adapters.routed_blobs import RoutedBlobStore


def test_keys_go_to_the_bucket_their_kind_belongs_to(tmp_path: Path) -> None:
    datasets, artifacts = DiskBlobStore(tmp_path / "d"), DiskBlobStore(tmp_path / "a")
    routed = RoutedBlobStore(datasets, artifacts)
    routed.put_bytes("tenants/t1/datasets/ds_1/images/i.png", b"img")
    routed.put_bytes("uploads/t1/up_1", b"zip")
    routed.put_bytes("tenants/t1/models/mdl_1/model.onnx", b"onnx")
    routed.put_bytes("jobs/job_1/input/training/manifest.jsonl", b"{}")
    assert datasets.list_keys("tenants/") == ["tenants/t1/datasets/ds_1/images/i.png"]
    assert datasets.exists("uploads/t1/up_1")
    assert artifacts.list_keys("tenants/") == ["tenants/t1/models/mdl_1/model.onnx"]
    assert artifacts.exists("jobs/job_1/input/training/manifest.jsonl")
    assert routed.get_bytes("tenants/t1/models/mdl_1/model.onnx") == b"onnx"
    routed.delete_prefix("tenants/t1/datasets/ds_1/")
    assert not routed.exists("tenants/t1/datasets/ds_1/images/i.png")
    assert routed.exists("tenants/t1/models/mdl_1/model.onnx")
