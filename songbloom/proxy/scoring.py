"""Scores of a recovered codebook in the proxy, where the hidden ids are known, and the pass rules of #17."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from songbloom.proxy.world import Song
from songbloom.sketch import SketchCodebook
from songbloom.sketch.muq_backbone import muq_fingerprint
from songbloom.sketch.recovery.evaluate import (
    agreement,
    gap_closed,
    matched_agreement,
    most_frequent_code_rate,
    unigram_entropy,
)
from songbloom.sketch.recovery.fresh import fit_fresh_codebook
from songbloom.sketch.switch_decoding import switch_rate


def codebook_ids(codebook: SketchCodebook, songs: Sequence[Song]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(ids, top-5 ids) of each song under a codebook, from the song's stored all-layer features. The ids are
    what every consumer gets (:meth:`SketchCodebook.assign`: songs decoded whole when the codebook has a switch
    bonus); the top-5 are per frame."""
    layer = int(codebook.metadata["muq_layer"])
    ids, top5 = [], []
    for s in songs:
        features = s.extra["features"][layer]
        ids.append(codebook.assign(features))
        top5.append(codebook.topk(features, min(5, codebook.num_codes)))
    return ids, top5


def fresh_codebook(songs: Sequence[Song], muq: torch.nn.Module, muq_dir: str, num_codes: int,
                   seed: int) -> SketchCodebook:
    """The k-means route of today on ``songs``: the report's own fresh codebook, on the last MuQ layer (the
    k-means route's default)."""
    layer = songs[0].extra["features"].shape[0] - 1
    return fit_fresh_codebook([s.extra["features"][layer] for s in songs], num_codes, layer=layer,
                              muq_model_id=muq_dir, muq_fingerprint=muq_fingerprint(muq), seed=seed)


def id_metrics(hidden: Sequence[torch.Tensor], recovered: Sequence[torch.Tensor], top5: Sequence[torch.Tensor],
               fresh: Sequence[torch.Tensor], num_codes: int) -> dict[str, Any]:
    hits5 = sum(int((t5 == h[:, None]).any(-1).sum()) for t5, h in zip(top5, hidden, strict=True))
    return {
        "id_agreement": agreement(recovered, hidden),
        "id_agreement_top5": hits5 / max(1, sum(h.numel() for h in hidden)),
        "most_frequent_code_rate": most_frequent_code_rate(hidden, num_codes),
        "fresh_agreement_matched": matched_agreement(fresh, hidden, num_codes, num_codes),
        "entropy": {"hidden": unigram_entropy(hidden, num_codes), "recovered": unigram_entropy(recovered, num_codes)},
        "change_rate": {"hidden": switch_rate(hidden), "recovered": switch_rate(recovered)},
    }


def _within(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * abs(b)


def judge(result: Mapping[str, Any], *, with_downstream: bool = True) -> dict[str, Any]:
    """The issue's rules: validity first (the truth must beat the permutation), then every pass check."""
    ar, flow = result["ar_loss"], result["flow_loss"]
    validity = {
        "ar_perm_minus_hidden_ge_0.5": ar["perm"] - ar["hidden"] >= 0.5,
        "flow_perm_ge_1.1x_hidden": flow["perm"] >= 1.1 * flow["hidden"],
    }
    if "hidden_stability" in result:  # the proxy's own check: hidden ids follow the audible sound
        validity["hidden_ids_stable_ge_0.9"] = result["hidden_stability"] >= 0.9
    if "hidden_locality" in result:  # and they follow the sound around them, not sound seconds away
        validity["hidden_ids_local_ge_0.9"] = result["hidden_locality"] >= 0.9
    gaps = {"ar": gap_closed(ar["perm"], ar["recovered"], ar["hidden"]),
            "flow": gap_closed(flow["perm"], flow["recovered"], flow["hidden"])}
    checks = {
        "ar_gap_closed_ge_0.5": _ge(gaps["ar"], 0.5),
        "flow_gap_closed_ge_0.5": _ge(gaps["flow"], 0.5),
        "entropy_within_10pct": _within(result["entropy"]["recovered"], result["entropy"]["hidden"], 0.10),
        "change_rate_within_10pct": _within(result["change_rate"]["recovered"], result["change_rate"]["hidden"], 0.10),
        "agreement_ge_0.7x_ceiling": result["id_agreement"] >= 0.7 * result["roundtrip_ceiling"],
        "agreement_ge_mfc_plus_0.3": result["id_agreement"] >= result["most_frequent_code_rate"] + 0.3,
    }
    if with_downstream:
        checks["downstream_recovered_beats_fresh_by_2se"] = bool(result["downstream"]["separation_se"] > 2.0)
    valid = all(validity.values())
    return {"valid": valid, "validity": validity, "gap_closed": gaps, "checks": checks,
            "passed": valid and all(checks.values()), "moonshot_0.9": _ge(min(gaps.values()), 0.9)}


def _ge(x: float, threshold: float) -> bool:
    return not math.isnan(x) and x >= threshold
