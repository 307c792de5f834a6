"""The pass rules of the proxy (issue #17), applied to hand-made results."""

import copy

from songbloom.proxy.scoring import judge

GOOD = {
    "ar_loss": {"hidden": 2.0, "recovered": 2.3, "perm": 8.0, "fresh": 9.0},
    "flow_loss": {"hidden": 0.20, "recovered": 0.22, "perm": 0.60, "fresh": 0.50},
    "entropy": {"hidden": 4.0, "recovered": 3.9},
    "change_rate": {"hidden": 0.50, "recovered": 0.47},
    "id_agreement": 0.75,
    "roundtrip_ceiling": 1.0,
    "most_frequent_code_rate": 0.05,
    "downstream": {"separation_se": 3.5},
}


def _with(**changes) -> dict:
    r = copy.deepcopy(GOOD)
    for path, value in changes.items():
        *head, last = path.split("__")
        target = r
        for key in head:
            target = target[key]
        target[last] = value
    return r


def test_a_good_result_passes_with_its_gaps() -> None:
    v = judge(GOOD)
    assert v["valid"] and v["passed"]
    assert abs(v["gap_closed"]["ar"] - 0.95) < 1e-9 and abs(v["gap_closed"]["flow"] - 0.95) < 1e-9
    assert v["moonshot_0.9"]


def test_each_rule_can_fail_the_result() -> None:
    failing = {
        "ar_gap_closed_ge_0.5": _with(ar_loss__recovered=6.0),
        "flow_gap_closed_ge_0.5": _with(flow_loss__recovered=0.45),
        "entropy_within_10pct": _with(entropy__recovered=3.5),
        "change_rate_within_10pct": _with(change_rate__recovered=0.40),
        "agreement_ge_0.7x_ceiling": _with(id_agreement=0.65),
        "agreement_ge_mfc_plus_0.3": _with(most_frequent_code_rate=0.5),
        "downstream_recovered_beats_fresh_by_2se": _with(downstream__separation_se=1.9),
    }
    for rule, result in failing.items():
        v = judge(result)
        assert not v["checks"][rule] and not v["passed"], rule
        assert sum(not ok for ok in v["checks"].values()) == 1, (rule, v["checks"])


def test_an_invalid_comparison_never_passes() -> None:
    for result in (_with(ar_loss__perm=2.4), _with(flow_loss__perm=0.21), {**GOOD, "hidden_stability": 0.5},
                   {**GOOD, "hidden_locality": 0.6}):
        v = judge(result)
        assert not v["valid"] and not v["passed"]
    assert "downstream_recovered_beats_fresh_by_2se" not in judge(GOOD, with_downstream=False)["checks"]
    assert judge({**GOOD, "hidden_stability": 0.99, "hidden_locality": 0.95})["valid"]


def test_codebook_ids_are_what_consumers_get_even_with_a_switch_bonus() -> None:
    import torch

    from songbloom.proxy.scoring import codebook_ids
    from songbloom.proxy.world import Song
    from songbloom.sketch import SketchCodebook

    g = torch.Generator().manual_seed(0)
    k, d, frames = 6, 5, 60
    probe = SketchCodebook.linear_probe(torch.randn(k, d, generator=g), torch.zeros(k), torch.zeros(d), torch.ones(d),
                                        muq_model_id="toy", muq_fingerprint="toy", muq_layer=1, muq_licence="x",
                                        feature_normalisation="standardize", switch_bonus=0.8)
    empty = torch.zeros(0)
    song = Song("s", 0, empty.long(), empty, empty, empty, empty, "", extra={"features": torch.randn(2, frames, d,
                                                                                                    generator=g)})
    ids, top5 = codebook_ids(probe, [song])
    assert torch.equal(ids[0], probe.assign(song.extra["features"][1]))
    assert top5[0].shape == (frames, 5)
    assert not torch.equal(ids[0], top5[0][:, 0])  # the bonus decodes the song whole; top-5 stay per frame
