"""Helpers of the recovered-codebook training tests: a tiny release, a codebook recovered from its tables (or from
other tables), and a short ``japanese_lora`` run on them."""

from __future__ import annotations

from pathlib import Path

import torch

from songbloom.building.sketch_tables import SKETCH_TABLE_KEYS, sketch_tables_sha256
from songbloom.checkpoints.release_state import read_release_checkpoint
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.sketch.artifact import SketchCodebook, save_codebook
from tests.checkpoints.formats.conftest import RELEASE, write_tiny_release_with_vae
from tests.training.conftest import TINY_CPU, compose_config, run_flat


def release_generator(release_dir: Path) -> dict[str, torch.Tensor]:
    generator, _, _ = read_release_checkpoint(release_dir / f"{RELEASE}.pt")
    return generator


def write_recovered_codebook(path: Path, tables_sha256: str, num_codes: int, base_name: str = RELEASE) -> Path:
    """A linear-probe codebook whose recovery block names ``tables_sha256`` (the shards are stood in by synthetic
    data, so only its metadata matters to training)."""
    g = torch.Generator().manual_seed(0)
    probe = SketchCodebook.linear_probe(
        torch.randn(num_codes, 4, generator=g), torch.zeros(num_codes), torch.zeros(4), torch.ones(4),
        muq_model_id="toy", muq_fingerprint="toy", muq_layer=1, muq_licence="CC-BY-NC-4.0",
        feature_normalisation="standardize",
        recovery={"base": {"name": base_name, "sketch_tables_sha256": tables_sha256, "num_pitch": num_codes,
                           "file_fingerprint": None},
                  "method": "test", "corpus": {"songs": 1, "frames": 1, "seconds": 1.0}, "metrics": {}},
    )  # fmt: skip
    return save_codebook(path, probe)


def other_tables_sha256() -> str:
    torch.manual_seed(999)
    return sketch_tables_sha256(SongBloomModel(SongBloomConfig.from_name("tiny").model))


def recovered_overrides(root: Path, release: Path, codebook: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        f"paths.root_dir={root}",
        "experiment=japanese_lora",
        *TINY_CPU,
        f"init.release_dir={release}",
        f"sketch.codebook_path={codebook}",
        "trainer.max_steps=2",
        "training.track_grad_coverage=true",
        "training.condition_dropout=false",
        "training.optim.lr=3e-3",
        "run_name=recovered",
        *extra,
    ]


def recovered_run(root: Path, *, same_tables: bool = True, overrides: tuple[str, ...] = ()) -> dict:
    """``experiment=japanese_lora`` for two steps on a tiny release with a codebook recovered from its tables (or
    from other tables); returns ``run_flat``'s dict plus ``release_dir``, ``release_sd`` and ``codebook``."""
    release = write_tiny_release_with_vae(root / "release")
    release_sd = release_generator(release)
    sha = sketch_tables_sha256(release_sd) if same_tables else other_tables_sha256()
    codebook = write_recovered_codebook(root / "recovered.safetensors", sha, tiny_num_pitch())
    result = run_flat(compose_config(recovered_overrides(root, release, codebook, overrides)))
    result.update(release_dir=release, release_sd=release_sd, codebook=codebook, root=root)
    return result


def tiny_num_pitch() -> int:
    return SongBloomConfig.from_name("tiny").model.num_pitch


def table_values(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The four tables of a (possibly peft-wrapped) state dict by their plain names."""
    plain = {k.replace(".base_layer.", "."): v for k, v in sd.items()}
    return {k: plain[k] for k in SKETCH_TABLE_KEYS}
