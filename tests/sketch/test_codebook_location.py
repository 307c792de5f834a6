"""The same codebook commands on the same audio in two folders give the same codebook (the held-out split hashes
each clip's path within its source, not where the data lives)."""

from __future__ import annotations

import shutil

import torch

from songbloom.sketch import CodebookTrainer, CodebookTrainingConfig, load_codebook
from songbloom.sketch.sources import list_directory


def _codebook(root, audio_dir, tiny_muq):
    data = root / "data"
    shutil.copytree(audio_dir, data)
    cfg = CodebookTrainingConfig(num_codes=8, epochs=1, batch_frames=128, shuffle_buffer_frames=512, seed=0,
                                 heldout_fraction=0.3)
    trainer = CodebookTrainer(cfg, tiny_muq, muq_model_id="tiny", work_dir=root / "work", progress=False)
    result = trainer.run(list_directory(data), root / "codebook.safetensors")
    return load_codebook(result.artifact_path), result


def test_same_data_in_two_folders_gives_the_same_codebook(tmp_path, tiny_muq, timbre_audio_dirs):
    train_dir = timbre_audio_dirs[0]
    a, ra = _codebook(tmp_path / "first" / "project", train_dir, tiny_muq)
    b, rb = _codebook(tmp_path / "elsewhere", train_dir, tiny_muq)
    held = ra.codebook.metadata["training"]["num_heldout_clips"]
    assert 0 < held < ra.codebook.metadata["training"]["num_train_clips"] + held
    assert a.codebook_hash == b.codebook_hash, "the codebook depends on the folder the data lives in"
    assert torch.equal(a.centers, b.centers)
