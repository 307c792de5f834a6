"""A fitted probe as a codebook artifact: tokenizer kind ``linear_probe`` plus the ``recovery`` block.

The block says which base model's sketch ids the codebook reproduces (the sha256 of its sketch tables, which
training compares with its init weights'), how it was made and on what corpus, and its held-out metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from songbloom.sketch.artifact import SketchCodebook
from songbloom.sketch.muq_backbone import MUQ_WEIGHTS_LICENCE
from songbloom.sketch.recovery.corpus_files import CorpusStatus
from songbloom.sketch.recovery.corpus_plan import CorpusPlan
from songbloom.sketch.recovery.fit import ProbeFit, ProbeFitSettings

METHOD = "linear_probe_self_distillation"
_METRIC_KEYS = ("agreement", "agreement_top5", "cross_entropy", "most_frequent_code_rate", "codes_used",
                "train_frames", "heldout_frames", "train_songs", "heldout_songs",
                # switch calibration (songbloom.sketch.recovery.fit.calibrate_switching; calibration_songs 0: the
                # bonus was chosen on held-out generations, else on that many of the user's songs)
                "switch_bonus", "label_change_rate", "argmax_change_rate", "decoded_change_rate", "decoded_agreement",
                "calibration_songs", "calibration_frames", "calibration_change_rate")


def base_block(plan: CorpusPlan) -> dict[str, Any]:
    """``recovery.base`` from the corpus plan (the base model as the generate stage described it)."""
    base = plan.identity["base"]
    sha = base.get("sketch_tables_sha256")
    if not sha:
        raise ValueError(
            "the corpus plan records no sketch_tables_sha256 of its base model (it was generated without "
            "`recover`); generate the corpus with `python -m songbloom.sketch recover --stage generate`"
        )
    return {
        "name": str(base["name"]),
        "sketch_tables_sha256": str(sha),
        "num_pitch": int(base["num_pitch"]),
        "file_fingerprint": base.get("checkpoint_fingerprint"),
    }


def recovery_block(plan: CorpusPlan, status: CorpusStatus, probe: ProbeFit) -> dict[str, Any]:
    """The full ``recovery`` metadata block of a probe fitted on the corpus ``plan`` describes."""
    metrics = {k: float(probe.metrics[k]) for k in _METRIC_KEYS if k in probe.metrics}
    metrics["layer"] = float(probe.layer)
    return {
        "base": base_block(plan),
        "method": METHOD,
        "corpus": {
            "songs": int(status.done),
            "frames": int(status.frames),
            "seconds": float(status.seconds),
            "skipped": int(status.skipped),
            "plan_sha256": plan.sha256,
        },
        "metrics": metrics,
    }


def probe_codebook(
    probe: ProbeFit,
    plan: CorpusPlan,
    status: CorpusStatus,
    settings: ProbeFitSettings,
    *,
    muq_model_id: str,
    muq_fingerprint: str,
    extra_training: Mapping[str, Any] | None = None,
) -> SketchCodebook:
    """The artifact of ``probe``: ids = argmax of the probe's logits over the standardised MuQ layer."""
    training = {
        "fit": {k: v for k, v in vars(settings).items() if k != "device"},
        "per_layer": {str(layer): m for layer, m in sorted(probe.per_layer.items())},
        **dict(extra_training or {}),
    }
    return SketchCodebook.linear_probe(
        probe.weight,
        probe.bias,
        probe.mean,
        probe.std,
        muq_model_id=muq_model_id,
        muq_fingerprint=muq_fingerprint,
        muq_layer=int(probe.layer),
        muq_licence=MUQ_WEIGHTS_LICENCE,
        feature_normalisation="standardize",
        recovery=recovery_block(plan, status, probe),
        training=training,
        switch_bonus=probe.switch_bonus,
    )
