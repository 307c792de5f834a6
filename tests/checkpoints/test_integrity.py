"""The integrity check every checkpoint reader runs first (songbloom.checkpoints.safe_load): damaged files are
called damaged, with their path, before torch reads them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from songbloom.checkpoints.safe_load import DamagedFileError, check_file_integrity, torch_load_safely


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.ckpt"
    torch.save({"global_step": 3, "state_dict": {"w": torch.randn(64 * 1024)}}, path)
    return path


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    if how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif how == "random_bytes":
        path.write_bytes(os.urandom(4096))
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "random_bytes", "empty"])
def test_damaged_files_are_called_damaged_with_their_path(good: Path, how: str):
    _damage(good, how)
    with pytest.raises(DamagedFileError, match="damaged file") as info:
        torch_load_safely(good)
    assert str(good) in str(info.value) and info.value.path == good


def test_overwritten_bytes_inside_the_file_fail_the_checksum_check(good: Path):
    check_file_integrity(good, checksums=True)
    data_start = good.stat().st_size // 2  # inside the tensor's bytes
    with open(good, "r+b") as f:
        f.seek(data_start)
        f.write(os.urandom(4096))
    check_file_integrity(good)  # the cheap check reads only the zip directory
    with pytest.raises(DamagedFileError, match="CRC"):
        check_file_integrity(good, checksums=True)


def test_a_zip_that_is_not_a_torch_file_and_a_legacy_torch_file(tmp_path: Path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.ckpt", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(DamagedFileError, match="no data.pkl"):
        check_file_integrity(tmp_path / "other.ckpt")
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False, pickle_protocol=2)
    check_file_integrity(legacy, checksums=True)  # no directory to check: left to torch.load
    assert torch.equal(torch_load_safely(legacy)["w"], torch.ones(2))
