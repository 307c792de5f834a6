"""The recovery report: how well the base model reads the user's songs through recovered ids and fresh ids.

Both id sets are scored with the base model's teacher-forced losses on the same songs, with the same flow noise
and timesteps (:func:`~songbloom.sketch.recovery.evaluate.teacher_forced_losses`):

- AR loss: cross-entropy of the base LM over the ids. Fresh k-means ids are unknown to the LM, so theirs sits
  near ``ln(num_pitch)`` or above; ids the LM was trained on score clearly lower.
- flow loss: the DiT's velocity error given the ids; lower means the ids tell the DiT more about the audio.
- AR information: the ids' unigram entropy minus the AR loss (nats per frame the LM predicts beyond the ids'
  own frequencies); above 0 means the LM knows these ids' sequence structure.

The route worked when the recovered ids win both losses and their AR loss is at least :data:`AR_MARGIN` nats
below the fresh ids'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from songbloom.sketch.alignment import FRAME_RATE
from songbloom.sketch.artifact import SketchCodebook
from songbloom.sketch.recovery.evaluate import EvalSong, teacher_forced_losses, unigram_entropy
from songbloom.sketch.recovery.heldout import HeldoutSong
from songbloom.sketch.switch_decoding import switch_rate

REPORT_FORMAT = "songbloom-sketch-recovery-report"
REPORT_VERSION = 1
AR_MARGIN = 0.5  # nats: "clearly below" the fresh ids' AR loss
ID_SETS = ("recovered", "fresh")


def assign_ids(codebook: SketchCodebook, songs: Sequence[HeldoutSong]) -> list[torch.Tensor]:
    """Per song ``[F]`` ids of ``codebook`` from the song's features at the codebook's MuQ layer."""
    layer = int(codebook.metadata["muq_layer"])
    return [codebook.assign(s.layer(layer)).long().cpu() for s in songs]


def id_statistics(ids: Sequence[torch.Tensor], num_pitch: int) -> dict[str, float]:
    codes = torch.unique(torch.cat([i.long() for i in ids])).numel()
    return {"entropy": unigram_entropy(ids, num_pitch), "change_rate": switch_rate(ids), "codes_used": float(codes)}


def verdict(ar: Mapping[str, float], flow: Mapping[str, float]) -> dict[str, Any]:
    """Which id set the base model reads better, and whether the route worked (see the module docstring)."""
    ar_gain = ar["fresh"] - ar["recovered"]
    flow_gain = (flow["fresh"] - flow["recovered"]) / flow["fresh"] if flow["fresh"] > 0 else 0.0
    if ar_gain > 0 and flow_gain > 0:
        better = "recovered"
    elif ar_gain < 0 and flow_gain < 0:
        better = "fresh"
    else:
        better = "mixed"
    worked = better == "recovered" and ar_gain >= AR_MARGIN
    if worked:
        text = (f"The recovered codebook is better: the base model's AR loss is {ar_gain:.2f} nats lower and its "
                f"flow loss {100 * flow_gain:.1f}% lower than with a fresh k-means codebook. Recovery worked: "
                "preprocess with this codebook and keep the sketch tables in the LoRA.")
    elif better == "recovered":
        text = (f"The recovered codebook is better, but only slightly (AR loss {ar_gain:.2f} nats lower, less than "
                f"{AR_MARGIN}; flow loss {100 * flow_gain:.1f}% lower): the base model barely recognises the ids. "
                "Generate a larger corpus or try other MuQ layers before relying on it.")
    elif better == "fresh":
        text = ("The fresh k-means codebook is better on both losses: the recovery did not work. Do not keep the "
                "sketch tables with this codebook; check the base model, the MuQ and the corpus.")
    else:
        text = (f"Mixed: AR loss {'lower' if ar_gain > 0 else 'higher'} by {abs(ar_gain):.2f} nats, flow loss "
                f"{'lower' if flow_gain > 0 else 'higher'} by {abs(100 * flow_gain):.1f}% with the recovered ids. "
                "The recovery is not convincing; generate a larger corpus or try other MuQ layers.")
    return {"better": better, "worked": worked, "ar_gain_nats": ar_gain, "flow_gain_fraction": flow_gain,
            "text": text}


def build_report(
    model,
    songs: Sequence[HeldoutSong],
    codebooks: Mapping[str, SketchCodebook],
    *,
    num_pitch: int,
    seed: int = 0,
    batch_size: int = 2,
) -> dict[str, Any]:
    """Losses and id statistics of each codebook's ids (``recovered`` and ``fresh``) under ``model``."""
    ids = {name: assign_ids(cb, songs) for name, cb in codebooks.items()}
    evals = [EvalSong(s.latents, s.lyric_ids, s.prompt_latents) for s in songs]
    losses = teacher_forced_losses(model, evals, ids, seed=seed, batch_size=batch_size)
    stats = {name: id_statistics(v, num_pitch) for name, v in ids.items()}
    ar = {name: losses[name].ar for name in ids}
    flow = {name: losses[name].flow for name in ids}
    frames = sum(s.num_frames for s in songs)
    return {
        "ar_loss": ar,
        "flow_loss": flow,
        "ar_info": {name: stats[name]["entropy"] - ar[name] for name in ids},
        "entropy": {name: stats[name]["entropy"] for name in ids},
        "change_rate": {name: stats[name]["change_rate"] for name in ids},
        "codes_used": {name: int(stats[name]["codes_used"]) for name in ids},
        "reference": {"ln_num_pitch": math.log(num_pitch), "num_pitch": num_pitch},
        "songs": {"count": len(songs), "frames": frames, "seconds": frames / FRAME_RATE,
                  "names": [s.name for s in songs]},
        "verdict": verdict(ar, flow),
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a readable table with the verdict under it."""
    songs, ref = report["songs"], report["reference"]
    rows = [
        ("AR loss (nats)", "ar_loss", "{:.3f}", f"ln {ref['num_pitch']} = {ref['ln_num_pitch']:.2f}"),
        ("flow loss", "flow_loss", "{:.4f}", "same noise and timesteps"),
        ("AR information (nats)", "ar_info", "{:+.3f}", "id entropy - AR loss"),
        ("id entropy (nats)", "entropy", "{:.3f}", ""),
        ("change rate", "change_rate", "{:.3f}", "share of frames whose id changes"),
        ("codes used", "codes_used", "{}", ""),
    ]
    fresh = report.get("codebooks", {}).get("fresh", {})
    skipped = report.get("skipped") or []
    lines = [
        f"sketch-id recovery report: {songs['count']} held-out song(s), {songs['frames']} frames "
        f"({songs['seconds']:.1f} s), base {report.get('base', {}).get('name', '?')}"
        + (f"; {len(skipped)} skipped (listed below)" if skipped else ""),
        f"{'':24s}{'recovered':>12s}{'fresh k-means':>16s}",
    ]
    for label, key, fmt, note in rows:
        values = [fmt.format(report[key][name]) for name in ID_SETS]
        lines.append(f"{label:24s}{values[0]:>12s}{values[1]:>16s}  {note}".rstrip())
    if fresh.get("source"):
        lines.append(f"fresh codebook: {fresh['source']}")
    lines += [f"skipped: {why}" for why in skipped]
    lines.append(f"verdict: {report['verdict']['text']}")
    return "\n".join(lines)
