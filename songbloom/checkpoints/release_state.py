"""Checkpoint I/O in the release format, with strict loading and readable mismatch reports.

A release ``.pt`` is the flat ``state_dict()`` of the official Lightning module: generator tensors under
``model.``, the VAE under ``vae.vae.``. Checkpoints written before upstream commit 990987e (Oct 2025), which
very probably includes the published 150 s ones, also hold a second copy of the VAE under
``model.condition_provider.conditioners.prompt_wav.tokenizer.vae.``. The official loader switched to
``strict=False`` when that block disappeared, which also hides wrongly-keyed checkpoints; here that one
known block is accepted explicitly and everything else must match exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from songbloom.checkpoints.keys import GENERATOR_PREFIX, LEGACY_VAE_PREFIX, VAE_KEY_ROOTS, VAE_PREFIX
from songbloom.checkpoints.safe_load import check_tensors, torch_load_safely
from songbloom.checkpoints.strict import CheckpointMismatchError, list_head
from songbloom.utils.atomic import atomic_write

logger = logging.getLogger(__name__)

_LEGACY_TOKENIZER_PREFIX = "model.condition_provider.conditioners.prompt_wav.tokenizer."

_REPORT_LIMIT = 20


@dataclass
class SplitReport:
    """What :func:`split_release_state_dict` found and did, for logs and tests."""

    n_generator: int = 0
    n_vae: int = 0
    vae_source: str | None = None  # "vae.vae" | "legacy_duplicate" | None (no VAE in the file)
    legacy_duplicate_found: bool = False
    legacy_duplicate_dropped: bool = False
    legacy_duplicate_identical: bool | None = None
    legacy_duplicate_max_abs_diff: float | None = None
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ reading
def load_release_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a release ``.pt``: a flat state dict or ``{'state_dict': ...}`` (a Lightning checkpoint).

    Loaded with ``weights_only=True`` onto the CPU, memory-mapped when the file format allows it, so a 2B
    checkpoint does not need to fit in RAM twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    obj = torch_load_safely(path)
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a dict (a state dict), got {type(obj).__name__}")
    if isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    elif obj and not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(
            f"{path}: neither a flat state dict nor a dict with a 'state_dict' entry "
            f"(top-level keys: {sorted(map(str, obj))[:10]})"
        )
    return check_tensors(obj, path)


# ------------------------------------------------------------------------------------------------ splitting
def _strip(sd: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _max_abs_diff(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> tuple[float, str | None]:
    worst, worst_key = 0.0, None
    for k, va in a.items():
        vb = b[k]
        if torch.equal(va, vb):
            continue
        diff = (va.double() - vb.double()).abs().max().item() if va.numel() else 0.0
        if diff > worst or worst_key is None:
            worst, worst_key = diff, k
    return worst, worst_key


def _compare_vae_blocks(main: dict[str, Tensor], legacy: dict[str, Tensor]) -> list[str]:
    problems = []
    only_main = sorted(set(main) - set(legacy))
    only_legacy = sorted(set(legacy) - set(main))
    if only_main:
        problems.append(f"{len(only_main)} keys only under {VAE_PREFIX}: {only_main[:_REPORT_LIMIT]}")
    if only_legacy:
        problems.append(f"{len(only_legacy)} keys only under {LEGACY_VAE_PREFIX}: {only_legacy[:_REPORT_LIMIT]}")
    shapes = [
        f"{k}: {tuple(main[k].shape)} vs {tuple(legacy[k].shape)}"
        for k in sorted(set(main) & set(legacy))
        if main[k].shape != legacy[k].shape
    ]
    if shapes:
        problems.append(f"{len(shapes)} shape differences: {shapes[:_REPORT_LIMIT]}")
    return problems


def split_release_state_dict(
    sd: Mapping[str, Tensor],
    *,
    duplicate_mismatch: str = "error",
    require_vae: bool = True,
) -> tuple[dict[str, Tensor], dict[str, Tensor], SplitReport]:
    """Split a flat release state dict into (generator, VAE) state dicts with their prefixes removed.

    ``model.*`` goes to the generator and ``vae.vae.*`` to the VAE. The release-era duplicate VAE block
    (``model.condition_provider.conditioners.prompt_wav.tokenizer.vae.*``) is used as the VAE when
    ``vae.vae.*`` is absent; when both exist they must hold the same tensors and the duplicate is dropped.
    If the two copies differ, ``duplicate_mismatch="error"`` raises (the release-era code encoded prompts
    with the duplicate and decoded with ``vae.vae``, which one VAE cannot reproduce); ``"warn"`` keeps
    ``vae.vae.*`` and records the largest difference in the report.

    Raises:
        CheckpointMismatchError: keys outside those blocks, a malformed duplicate block, differing copies
            (in "error" mode) or no VAE at all while ``require_vae``.
    """
    if duplicate_mismatch not in ("error", "warn"):
        raise ValueError(f"duplicate_mismatch must be 'error' or 'warn', got {duplicate_mismatch!r}")
    report = SplitReport()
    unknown = sorted(k for k in sd if not k.startswith((GENERATOR_PREFIX, VAE_PREFIX)))
    odd_tokenizer = sorted(
        k for k in sd if k.startswith(_LEGACY_TOKENIZER_PREFIX) and not k.startswith(LEGACY_VAE_PREFIX)
    )
    legacy = _strip(sd, LEGACY_VAE_PREFIX)
    odd_legacy = sorted(LEGACY_VAE_PREFIX + k for k in legacy if not k.startswith(VAE_KEY_ROOTS))
    bad = unknown + odd_tokenizer + odd_legacy
    if bad:
        raise CheckpointMismatchError(
            f"release checkpoint has {len(bad)} keys outside the known blocks ({GENERATOR_PREFIX}*, {VAE_PREFIX}*, "
            f"and the release-era {LEGACY_VAE_PREFIX}{{encoder,decoder}}.*): {list_head(bad)}",
            unexpected=bad,
        )
    generator = {
        k: v
        for k, v in _strip(sd, GENERATOR_PREFIX).items()
        if not (GENERATOR_PREFIX + k).startswith(LEGACY_VAE_PREFIX)
    }
    if not generator:
        raise CheckpointMismatchError(f"release checkpoint has no {GENERATOR_PREFIX}* generator tensors")
    vae = _strip(sd, VAE_PREFIX)

    if legacy:
        report.legacy_duplicate_found = True
        if not vae:
            vae = legacy
            report.vae_source = "legacy_duplicate"
            report.notes.append(
                f"no {VAE_PREFIX}* block: using the release-era {LEGACY_VAE_PREFIX}* copy ({len(legacy)} tensors)"
            )
        else:
            problems = _compare_vae_blocks(vae, legacy)
            if problems:
                raise CheckpointMismatchError(
                    "the two VAE copies in the checkpoint do not have the same layout:\n  - " + "\n  - ".join(problems)
                )
            diff, worst_key = _max_abs_diff(vae, legacy)
            report.legacy_duplicate_identical = worst_key is None
            report.legacy_duplicate_max_abs_diff = diff
            if worst_key is not None:
                msg = (
                    f"the release-era VAE copy {LEGACY_VAE_PREFIX}* differs from {VAE_PREFIX}*: "
                    f"max |diff| {diff:.3g} (at {worst_key})"
                )
                if duplicate_mismatch == "error":
                    raise CheckpointMismatchError(
                        msg + "; pass duplicate_mismatch='warn' to keep vae.vae.* and drop the copy anyway"
                    )
                logger.warning("%s; keeping %s* and dropping the copy", msg, VAE_PREFIX)
                report.notes.append(msg)
            report.vae_source = "vae.vae"
            report.legacy_duplicate_dropped = True
            report.notes.append(
                f"dropped the release-era duplicate VAE block {LEGACY_VAE_PREFIX}* ({len(legacy)} tensors, "
                + ("identical to vae.vae.*)" if worst_key is None else f"max |diff| {diff:.3g})")
            )
    elif vae:
        report.vae_source = "vae.vae"
    if not vae and require_vae:
        raise CheckpointMismatchError(
            f"release checkpoint has no VAE ({VAE_PREFIX}* or {LEGACY_VAE_PREFIX}*); "
            "pass require_vae=False for a generator-only file"
        )
    report.n_generator, report.n_vae = len(generator), len(vae)
    for note in report.notes:
        logger.info("%s", note)
    logger.info("release checkpoint: %d generator tensors, %d VAE tensors", len(generator), len(vae))
    return generator, vae, report


def read_release_checkpoint(
    path: str | Path, *, duplicate_mismatch: str = "error", require_vae: bool = True
) -> tuple[dict[str, Tensor], dict[str, Tensor], SplitReport]:
    """:func:`load_release_state_dict` then :func:`split_release_state_dict`: (generator, VAE, report)."""
    try:
        return split_release_state_dict(
            load_release_state_dict(path), duplicate_mismatch=duplicate_mismatch, require_vae=require_vae
        )
    except CheckpointMismatchError as e:
        raise CheckpointMismatchError(
            f"{path}: {e}", missing=e.missing, unexpected=e.unexpected, mismatched=e.mismatched
        ) from e


# ------------------------------------------------------------------------------------------------ writing
def _own_storage(t: Tensor) -> Tensor:
    # torch.save writes a view's whole storage; clone views so a slice does not drag its parent along.
    t = t.detach().cpu()
    if not t.is_contiguous() or t.untyped_storage().nbytes() != t.numel() * t.element_size():
        t = t.clone(memory_format=torch.contiguous_format)
    return t


def save_release_checkpoint(path: str | Path, generator_sd: Mapping[str, Tensor], vae_sd: Mapping[str, Tensor]) -> Path:
    """Write the current official layout: flat ``model.*`` + ``vae.vae.*``, without the duplicate VAE block.

    The file appears atomically (temp file in the same directory, then ``os.replace``), so a crash never
    leaves a half-written checkpoint under the final name.
    """
    path = Path(path)
    prefixed = sorted(k for k in list(generator_sd) + list(vae_sd) if k.startswith((GENERATOR_PREFIX, VAE_PREFIX)))
    if prefixed:
        raise ValueError(
            "save_release_checkpoint expects un-prefixed state dicts (it adds model./vae.vae.); "
            f"got {list_head(prefixed)}"
        )
    odd_vae = sorted(k for k in vae_sd if not k.startswith(VAE_KEY_ROOTS))
    if odd_vae:
        raise ValueError(f"VAE state dict keys must start with encoder. or decoder.: {list_head(odd_vae)}")
    bad = [k for k, v in {**generator_sd, **vae_sd}.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"save_release_checkpoint: non-tensor entries {list_head(sorted(bad))}")
    flat: dict[str, Tensor] = {}
    for k, v in vae_sd.items():
        flat[VAE_PREFIX + k] = _own_storage(v)
    for k, v in generator_sd.items():
        flat[GENERATOR_PREFIX + k] = _own_storage(v)
    atomic_write(path, lambda f: torch.save(flat, f), binary=True)
    logger.info("saved release checkpoint %s (%d generator + %d VAE tensors)", path, len(generator_sd), len(vae_sd))
    return path
