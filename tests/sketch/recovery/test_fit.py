"""The probe fit: it recovers a hidden linear quantiser from noisy labels, picks the right layer, holds out songs."""

import pytest
import torch

from songbloom.sketch.recovery.fit import ProbeFitSettings, fit_probe, split_corpus
from songbloom.sketch.switch_decoding import decode_with_switch_bonus, switch_rate


def _corpus(num_songs: int = 30, frames: int = 60, dim: int = 12, codes: int = 8, noise: float = 0.2, seed: int = 0,
            proj_seed: int = 0):
    """Three 'layers'; ids come from nearest centres of a random projection of layer 1, a share of them flipped."""
    gp = torch.Generator().manual_seed(proj_seed)  # the hidden quantiser; the songs come from ``seed``
    proj = torch.randn(dim, 4, generator=gp)
    centers = torch.randn(codes, 4, generator=gp) * 2
    g = torch.Generator().manual_seed(seed + 100)
    feats, ids, truth = [], [], []
    for _ in range(num_songs):
        layers = torch.randn(3, frames, dim, generator=g)
        true = torch.cdist(layers[1] @ proj, centers).argmin(-1)
        noisy = torch.where(torch.rand(frames, generator=g) < noise, torch.randint(0, codes, (frames,), generator=g),
                            true)
        feats.append(layers)
        ids.append(noisy)
        truth.append(true)
    return feats, ids, truth


def test_probe_finds_the_layer_and_the_quantiser_through_label_noise() -> None:
    feats, ids, _ = _corpus(num_songs=60)
    settings = ProbeFitSettings(epochs=150, batch_frames=1024, lr=0.05, seed=0)
    split = split_corpus(feats, ids, (0, 1, 2), settings)
    probe = fit_probe(split, 8, settings)
    assert probe.layer == 1
    assert probe.per_layer[1]["agreement"] > probe.per_layer[0]["agreement"] + 0.3
    # on new songs the probe follows the noise-free quantiser (chance is 1/8; clean labels give > 0.93)
    new_feats, _, new_truth = _corpus(num_songs=10, seed=1)
    pred = torch.cat([probe.predict(f[1]) for f in new_feats])
    assert (pred == torch.cat(new_truth)).float().mean() > 0.8
    clean_feats, clean_ids, _ = _corpus(num_songs=60, noise=0.0)
    one_layer = ProbeFitSettings(epochs=150, batch_frames=1024, lr=0.05, seed=0, layers=(1,))
    clean = fit_probe(split_corpus(clean_feats, clean_ids, (0, 1, 2), one_layer), 8, one_layer)
    assert (torch.cat([clean.predict(f[1]) for f in new_feats]) == torch.cat(new_truth)).float().mean() > 0.93
    assert probe.metrics["heldout_songs"] == 6 and probe.metrics["train_songs"] == 54


def test_split_holds_out_whole_songs() -> None:
    feats, ids, _ = _corpus(num_songs=10, frames=7)
    split = split_corpus(feats, ids, (0, 1, 2), ProbeFitSettings(heldout_fraction=0.2, seed=3))
    assert split.heldout_ids.numel() == 2 * 7 and split.train_ids.numel() == 8 * 7
    assert set(split.train_features) == {0, 1, 2}


def test_bad_settings_and_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="heldout_fraction"):
        ProbeFitSettings(heldout_fraction=1.0)
    feats, ids, _ = _corpus(num_songs=1)
    with pytest.raises(ValueError, match="at least 2"):
        split_corpus(feats, ids, (0, 1, 2), ProbeFitSettings())
    feats, ids, _ = _corpus(num_songs=4)
    split = split_corpus(feats, ids, (0, 1, 2), ProbeFitSettings())
    with pytest.raises(ValueError, match="outside"):
        fit_probe(split, 4, ProbeFitSettings(epochs=1))
    with pytest.raises(ValueError, match="layer 5"):
        fit_probe(split, 8, ProbeFitSettings(epochs=1, layers=(5,)))


def test_switch_calibration_matches_the_base_models_own_switching() -> None:
    """Labels that switch more than the probe's argmax (noise flips single frames): the calibrated bonus makes
    the held-out decoded ids switch as often as the labels, and the artifact-facing metrics say so."""
    feats, ids, _ = _corpus(num_songs=40, noise=0.3)
    settings = ProbeFitSettings(epochs=60, batch_frames=1024, lr=0.05, seed=0, layers=(1,), calibrate_switching=True)
    probe = fit_probe(split_corpus(feats, ids, (0, 1, 2), settings), 8, settings)
    m = probe.metrics
    assert probe.switch_bonus == m["switch_bonus"]
    assert abs(m["decoded_change_rate"] - m["label_change_rate"]) < 0.02, m
    assert m["argmax_change_rate"] != pytest.approx(m["label_change_rate"], abs=0.02), m
    assert 0.0 < m["decoded_agreement"] <= 1.0
    assert m["calibration_songs"] == 0.0 and m["calibration_change_rate"] == m["decoded_change_rate"]
    off = ProbeFitSettings(epochs=60, batch_frames=1024, lr=0.05, seed=0, layers=(1,), calibrate_switching=False)
    assert fit_probe(split_corpus(feats, ids, (0, 1, 2), off), 8, off).switch_bonus == 0.0


def _held_notes(num_songs: int, jitter: float, seed: int, frames: int = 60, hold: int = 4):
    """Songs whose layer-1 features hold each value for ``hold`` frames plus ``jitter`` noise; ids from the clean
    values by :func:`_corpus`'s quantiser, 20 % of them flipped (the base model's sampling)."""
    feats, ids, _ = _corpus(num_songs=num_songs, frames=frames // hold, seed=seed)
    g = torch.Generator().manual_seed(seed + 7)
    out_f, out_y = [], []
    for f, y in zip(feats, ids, strict=True):
        f = f.repeat_interleave(hold, dim=1)
        out_f.append(f + jitter * torch.randn(f.shape, generator=g))
        y = y.repeat_interleave(hold)
        out_y.append(torch.where(torch.rand(y.shape, generator=g) < 0.2, torch.randint(0, 8, y.shape, generator=g), y))
    return out_f, out_y


def test_switch_bonus_is_chosen_on_the_songs_given_not_on_the_generations() -> None:
    """Real songs the probe reads less surely than its corpus (more jitter): a bonus chosen on them makes *their*
    decoded ids switch at the base model's rate; the bonus chosen on the generations does not."""
    feats, ids = _held_notes(40, jitter=0.1, seed=0)
    settings = ProbeFitSettings(epochs=60, batch_frames=1024, lr=0.05, seed=0, layers=(1,))
    split = split_corpus(feats, ids, (0, 1, 2), settings)
    real, _ = _held_notes(12, jitter=0.8, seed=5)
    songs = {1: [f[1] for f in real]}
    on_songs = fit_probe(split, 8, settings, songs)
    on_generations = fit_probe(split, 8, settings)
    m = on_songs.metrics
    target = m["label_change_rate"]
    assert m["calibration_songs"] == 12.0 and m["calibration_frames"] == sum(f.shape[1] for f in real)
    assert abs(m["calibration_change_rate"] - target) < 0.02, m
    rate_there = switch_rate([decode_with_switch_bonus(on_generations.scores(f).log_softmax(-1),
                                                       on_generations.switch_bonus) for f in songs[1]])
    assert abs(rate_there - target) > 0.05, (rate_there, target)
    assert on_songs.switch_bonus < on_generations.switch_bonus - 0.1
    with pytest.raises(ValueError, match="layer 1"):
        fit_probe(split, 8, settings, {0: songs[1]})
