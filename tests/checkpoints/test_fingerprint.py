"""The base fingerprint: under a second on a large file, and it tells a changed file from the same one."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from songbloom.checkpoints.fingerprint import file_fingerprint, fingerprint_differences


def _sparse_safetensors(path: Path, gib: int) -> Path:
    """A valid safetensors file of ``gib`` GiB whose tensor data is a hole (no disk space used)."""
    nbytes = gib * 2**30
    header = json.dumps({"model.big": {"dtype": "U8", "shape": [nbytes], "data_offsets": [0, nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + nbytes)
    return path


def test_fingerprint_of_a_large_sparse_file_takes_under_a_second(tmp_path: Path):
    path = _sparse_safetensors(tmp_path / "big.safetensors", gib=8)
    start = time.perf_counter()
    fp = file_fingerprint(path)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"fingerprint of an 8 GiB file took {elapsed:.2f} s"
    assert fp["size"] == path.stat().st_size and fp["key_count"] == 1
    assert fingerprint_differences(fp, file_fingerprint(path)) == []


def test_fingerprint_tells_which_parts_changed(tmp_path: Path):
    a = {"w": torch.zeros(4, 4), "b": torch.zeros(4)}
    path = tmp_path / "base.safetensors"
    save_file(a, path)
    fp = file_fingerprint(path)
    save_file({**a, "w": torch.ones(4, 4)}, path)  # same keys and size, other values
    assert fingerprint_differences(fp, file_fingerprint(path)) == ["first MiB", "last MiB"]
    save_file({**a, "extra": torch.zeros(1)}, path)
    assert {"size", "header", "key list"} <= set(fingerprint_differences(fp, file_fingerprint(path)))


def test_torch_zip_fingerprint_covers_the_tensor_data_and_names(tmp_path: Path):
    path = tmp_path / "base.pt"
    torch.save({"state_dict": {"model.w": torch.zeros(64, 64)}}, path)
    fp = file_fingerprint(path)
    assert fp["key_count"] == 1 and fp["header"] is not None
    torch.save({"state_dict": {"model.w": torch.zeros(64, 64).index_fill_(0, torch.tensor([3]), 1.0)}}, path)
    assert "header" in fingerprint_differences(fp, file_fingerprint(path))  # the zip CRC of the tensor changed
