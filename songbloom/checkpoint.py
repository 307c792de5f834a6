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
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from songbloom.utils.atomic import atomic_write

logger = logging.getLogger(__name__)

GENERATOR_PREFIX = "model."
VAE_PREFIX = "vae.vae."
# Release-era duplicate of the VAE, registered as a sub-module of the prompt conditioner's tokenizer.
LEGACY_VAE_PREFIX = "model.condition_provider.conditioners.prompt_wav.tokenizer.vae."
_LEGACY_TOKENIZER_PREFIX = "model.condition_provider.conditioners.prompt_wav.tokenizer."
VAE_KEY_ROOTS = ("encoder.", "decoder.")

_REPORT_LIMIT = 20


class CheckpointMismatchError(ValueError):
    """A state dict does not fit its module or the release layout; the message lists what differs."""

    def __init__(
        self,
        message: str,
        *,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = missing or []
        self.unexpected = unexpected or []
        self.mismatched = mismatched or []


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
def torch_load_safely(path: Path, *, allowed_globals: list | None = None, what: str = "tensors and plain containers",
                      hint: str | None = None) -> object:
    """``torch.load(weights_only=True)``, memory-mapped when the file allows, with a clear refusal message.

    ``allowed_globals`` extends the unpickler's allow-list (e.g. the OmegaConf classes the public fork stores);
    ``what`` names what the file may hold and ``hint`` what to do when it holds more.
    """
    import contextlib

    scope = torch.serialization.safe_globals(allowed_globals) if allowed_globals else contextlib.nullcontext()
    try:
        with scope:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                # mmap needs the zip format of torch >= 1.6; older files load fully into memory instead.
                if "mmap" not in str(e):
                    raise
                logger.info("%s: not mmap-able (%s); loading it into memory", path, e)
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        last_line = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        hint = hint or (
            "If you trust the file, re-save only its tensors (its 'state_dict' mapping) with torch.save or "
            "safetensors in the environment that wrote it, and load that copy."
        )
        raise ValueError(
            f"{path}: holds Python objects other than {what}, which we refuse to unpickle (weights_only=True). "
            f"{hint} ({last_line})"
        ) from e


def _check_tensors(sd: Mapping[str, object], path: Path) -> dict[str, Tensor]:
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        shown = ", ".join(f"{k!r}: {type(sd[k]).__name__}" for k in bad[:10])
        raise ValueError(f"{path}: expected a state dict of tensors; {len(bad)} entries are not ({shown})")
    return dict(sd)  # type: ignore[arg-type]


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
    return _check_tensors(obj, path)


def load_vae_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Read the VAE checkpoint (``{'state_dict': {encoder.*, decoder.*}}``, the form the release ships)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VAE checkpoint {path} does not exist")
    obj = torch_load_safely(path)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
        keys = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{path}: expected {{'state_dict': {{encoder.*, decoder.*}}}}, got {keys}")
    sd = _check_tensors(obj["state_dict"], path)
    odd = sorted(k for k in sd if not k.startswith(VAE_KEY_ROOTS))
    if odd:
        raise CheckpointMismatchError(
            f"{path}: VAE state dict keys must start with encoder. or decoder.; "
            f"{len(odd)} do not: {odd[:_REPORT_LIMIT]}",
            unexpected=odd,
        )
    return sd


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
            f"and the release-era {LEGACY_VAE_PREFIX}{{encoder,decoder}}.*): {_head(bad)}",
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


# ------------------------------------------------------------------------------------------------ strict load
def _head(items: list[str], limit: int = _REPORT_LIMIT) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _section(title: str, lines: list[str]) -> list[str]:
    if not lines:
        return []
    out = [f"  {title}: {len(lines)}"]
    out += [f"    - {line}" for line in lines[:_REPORT_LIMIT]]
    if len(lines) > _REPORT_LIMIT:
        out.append(f"    ... and {len(lines) - _REPORT_LIMIT} more")
    return out


def _common_prefix_hint(missing: Iterable[str], unexpected: Iterable[str]) -> str | None:
    missing_set = set(missing)
    unexpected = list(unexpected)
    for prefix in (GENERATOR_PREFIX, VAE_PREFIX, "vae.", "module.", "_orig_mod.", LEGACY_VAE_PREFIX):
        stripped = {k[len(prefix) :] for k in unexpected if k.startswith(prefix)}
        if stripped and stripped & missing_set:
            return (
                f"the checkpoint keys still carry the prefix {prefix!r}: split release files with "
                "split_release_state_dict() (or strip the prefix) before loading"
            )
    for prefix in ("module.", "_orig_mod."):
        added = {prefix + k for k in missing_set}
        if added & set(unexpected):
            return f"the module keys carry a {prefix!r} wrapper prefix: load into the unwrapped module"
    return None


def _mismatch_hint(
    missing: list[str], unexpected: list[str], mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
) -> str:
    prefix_hint = _common_prefix_hint(missing, unexpected)
    if prefix_hint:
        return prefix_hint
    if mismatched:
        same_keys = "same keys but other shapes: " if not (missing or unexpected) else ""
        return (
            f"{same_keys}this checkpoint has a different geometry (num_pitch/dim/latent_dim/lyric vocab or max "
            "lengths?); build the module from the checkpoint's config"
        )
    layer_keys = [k for k in missing + unexpected if ".layers." in k]
    if layer_keys:
        return (
            "layer keys differ: this checkpoint has a different geometry (lm_layers/diff_layers/dim/num_pitch?); "
            "build the module from the checkpoint's config"
        )
    return "the checkpoint was written for another architecture or version; compare its config with the module's"


def state_dict_mismatches(
    expected: Mapping[str, tuple[int, ...]], got: Mapping[str, tuple[int, ...]]
) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """(missing, unexpected, shape mismatches as (name, expected shape, got shape)), each sorted."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = [
        (k, tuple(expected[k]), tuple(got[k]))
        for k in sorted(set(expected) & set(got))
        if tuple(expected[k]) != tuple(got[k])
    ]
    return missing, unexpected, mismatched


def format_mismatch_report(
    what: str,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    expected_shapes: Mapping[str, tuple[int, ...]] | None = None,
    got_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> str:
    """Readable multi-line report of a key/shape comparison (first 20 of each kind, with counts)."""
    exp = expected_shapes or {}
    got = got_shapes or {}
    lines = [f"cannot load {what}: the state dict does not match the module (strict load)"]
    lines += _section(
        "missing keys (in the module, not in the state dict)",
        [f"{k} {tuple(exp[k]) if k in exp else ''}".rstrip() for k in missing],
    )
    lines += _section(
        "unexpected keys (in the state dict, not in the module)",
        [f"{k} {tuple(got[k]) if k in got else ''}".rstrip() for k in unexpected],
    )
    lines += _section(
        "shape mismatches (name: expected, got)", [f"{k}: expected {e}, got {g}" for k, e, g in mismatched]
    )
    lines.append("hint: " + _mismatch_hint(missing, unexpected, mismatched))
    return "\n".join(lines)


def strict_load(module: nn.Module, state_dict: Mapping[str, Tensor], *, what: str, assign: bool = False) -> None:
    """``module.load_state_dict(state_dict, strict=True)`` with a readable report instead of torch's.

    Keys and shapes are compared before anything is copied, so a failed load leaves the module untouched.
    ``assign=True`` is passed through (to load into a module built on the meta device).

    Raises:
        CheckpointMismatchError: listing missing keys, unexpected keys and shape mismatches, plus a hint.
    """
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing, unexpected, mismatched = state_dict_mismatches(expected, got)
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            format_mismatch_report(what, missing, unexpected, mismatched, expected, got),
            missing=missing,
            unexpected=unexpected,
            mismatched=mismatched,
        )
    try:
        module.load_state_dict(state_dict, strict=True, assign=assign)
    except RuntimeError as e:  # e.g. a custom _load_from_state_dict hook that remaps keys
        raise CheckpointMismatchError(f"cannot load {what}: {e}") from e
    logger.info("loaded %s: %d tensors (strict)", what, len(got))


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
            f"save_release_checkpoint expects un-prefixed state dicts (it adds model./vae.vae.); got {_head(prefixed)}"
        )
    odd_vae = sorted(k for k in vae_sd if not k.startswith(VAE_KEY_ROOTS))
    if odd_vae:
        raise ValueError(f"VAE state dict keys must start with encoder. or decoder.: {_head(odd_vae)}")
    bad = [k for k, v in {**generator_sd, **vae_sd}.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"save_release_checkpoint: non-tensor entries {_head(sorted(bad))}")
    flat: dict[str, Tensor] = {}
    for k, v in vae_sd.items():
        flat[VAE_PREFIX + k] = _own_storage(v)
    for k, v in generator_sd.items():
        flat[GENERATOR_PREFIX + k] = _own_storage(v)
    atomic_write(path, lambda f: torch.save(flat, f), binary=True)
    logger.info("saved release checkpoint %s (%d generator + %d VAE tensors)", path, len(generator_sd), len(vae_sd))
    return path
