"""Strict state-dict loading with a readable report of missing, unexpected and mis-shaped keys.

``nn.Module.load_state_dict(strict=True)`` names the keys but not why they differ; the report here groups
them, shows shapes and guesses the usual causes (a prefix, a different preset), so a wrong file is named
as such instead of failing deep inside a forward pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from torch import Tensor, nn

from songbloom.checkpoints.keys import GENERATOR_PREFIX, LEGACY_VAE_PREFIX, VAE_PREFIX

logger = logging.getLogger(__name__)

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


def list_head(items: list[str], limit: int = _REPORT_LIMIT) -> str:
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
