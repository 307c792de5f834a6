"""No code from outside runs: a MuQ-MuLan folder whose audio tower asks for remote code, and a MuQ folder (named
by a sketch codebook) whose ``rvq_ckpt_path`` is a pickle, are refused with the reason; their payload never runs.

Each payload writes a marker file when it runs; the tests assert the marker does not exist.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

MARKER_CODE = "open({marker!r}, 'w').write('payload ran')"


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (MARKER_CODE.format(marker=self.marker),))


@pytest.fixture(scope="module")
def tiny_muq_dir(tmp_path_factory) -> Path:
    from songbloom.sketch import build_tiny_muq

    out = tmp_path_factory.mktemp("tiny_muq")
    build_tiny_muq(seed=0, out_dir=out)
    return out


def _remote_code_mulan(root: Path, marker: Path) -> Path:
    """A MuQ-MuLan folder whose audio tower (a path without 'muq' in it) ships code behind ``auto_map``."""
    from songbloom.eval.mulan import _save_tiny_xlm_roberta

    tower = root / "audio-tower"
    tower.mkdir(parents=True)
    (tower / "evil.py").write_text(
        MARKER_CODE.format(marker=str(marker)) + "\nfrom transformers import PretrainedConfig, PreTrainedModel\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
        "class EvilModel(PreTrainedModel):\n    config_class = EvilConfig\n",
        encoding="utf-8",
    )
    (tower / "config.json").write_text(json.dumps({
        "model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"},
    }))
    xlmr = root / "tiny-xlm-roberta"
    _save_tiny_xlm_roberta(xlmr, 0)
    mulan = root / "mulan"
    mulan.mkdir()
    config = {
        "mulan": {"sr": 24000, "clip_secs": 1, "dim_latent": 16, "decoupled_contrastive_learning": True,
                  "hierarchical_contrastive_loss": False, "hierarchical_contrastive_loss_layers": None,
                  "sigmoid_contrastive_loss": False, "rank_contrast": True},
        "audio_model": {"name": str(tower), "model_dim": 64, "use_layer_idx": -1},
        "text_model": {"name": str(xlmr), "model_dim": 32, "use_layer_idx": -1},
        "audio_transformer": {"dim": 32, "tf_depth": 1, "heads": 2, "dim_head": 16, "attn_dropout": 0.0,
                              "ff_dropout": 0.0, "ff_mult": 2},
        "text_transformer": {"dim": 32, "tf_depth": 1, "max_seq_len": 64, "heads": 2, "dim_head": 16,
                             "attn_dropout": 0.0, "ff_dropout": 0.0, "ff_mult": 2},
    }
    (mulan / "config.json").write_text(json.dumps(config))
    return mulan


def test_mulan_folder_asking_for_remote_code_is_refused(tmp_path, capsys):
    from songbloom.cli.evaluate import main

    marker = tmp_path / "REMOTE_CODE_RAN"
    mulan = _remote_code_mulan(tmp_path / "models", marker)
    songs = tmp_path / "songs"
    songs.mkdir()
    sf.write(songs / "a.wav", np.zeros(24000, dtype=np.float32), 24000)
    try:
        rc = main(["--out", str(tmp_path / "report"), "--audio", f"a={songs}", "--embedder", "mel",
                   "--mulan", str(mulan)])
    except SystemExit as e:
        rc = e.code
    except Exception as e:  # noqa: BLE001 - an uncaught error is a failure too, but only after the marker check
        rc = e
    assert not marker.exists(), "code from the model folder ran"
    assert rc not in (0, None) and not isinstance(rc, BaseException), rc
    err = capsys.readouterr().err
    assert "audio_model.name" in err and "trust_remote_code" in err and str(mulan / "config.json") in err
    assert "Traceback" not in err


def _codebook_naming(muq_dir: Path, path: Path) -> Path:
    from songbloom.sketch.artifact import SketchCodebook, build_metadata, save_codebook

    centers, mean, std = torch.randn(4, 64), torch.zeros(64), torch.ones(64)
    meta = build_metadata(centers=centers, mean=mean, std=std, muq_model_id=str(muq_dir), muq_fingerprint="x",
                          muq_layer=-1, muq_licence="CC-BY-NC-4.0", feature_normalisation="none")
    return save_codebook(path, SketchCodebook(centers, mean, std, meta))


@pytest.mark.parametrize("force_unsafe_env", [False, True], ids=["plain", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"])
def test_codebook_naming_muq_with_pickled_rvq_checkpoint_is_refused(tiny_muq_dir, tmp_path, capsys, monkeypatch,
                                                                     force_unsafe_env):
    from songbloom.sketch.cli import main

    marker = tmp_path / "PICKLE_RAN"
    muq_dir = tmp_path / "evil-muq"
    shutil.copytree(tiny_muq_dir, muq_dir)
    rvq = muq_dir / "rvq.pt"
    rvq.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    cfg = json.loads((muq_dir / "config.json").read_text())
    cfg.update(use_rvq_target=True, rvq_ckpt_path=str(rvq))
    (muq_dir / "config.json").write_text(json.dumps(cfg))
    codebook = _codebook_naming(muq_dir, tmp_path / "codebook.safetensors")
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.zeros(24000, dtype=np.float32), 24000)
    if force_unsafe_env:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    try:
        rc = main(["tokenize", "--codebook", str(codebook), str(clip), "--out-dir", str(tmp_path / "tok")])
    except Exception as e:  # noqa: BLE001 - an uncaught error is a failure too, but only after the marker check
        rc = e
    assert not marker.exists(), "the pickled rvq_ckpt_path was unpickled (its code ran)"
    assert rc not in (0, None) and not isinstance(rc, BaseException), rc
    err = capsys.readouterr().err
    if force_unsafe_env:
        assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set" in err and "unset TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in err
    else:
        assert "rvq_ckpt_path" in err and str(muq_dir / "config.json") in err and '"rvq_ckpt_path": null' in err
    assert "Traceback" not in err
