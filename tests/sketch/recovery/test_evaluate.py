"""Scoring id sets under a base model: shared noise, the right targets, and the id statistics."""

import math

import torch

from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.sketch.recovery.evaluate import (
    EvalSong,
    agreement,
    ar_information,
    gap_closed,
    matched_agreement,
    most_frequent_code_rate,
    teacher_forced_losses,
    unigram_entropy,
)
from songbloom.sketch.switch_decoding import switch_rate


def _model() -> SongBloomModel:
    torch.manual_seed(0)
    return SongBloomModel(SongBloomConfig.from_name("tiny", num_pitch=16).model).eval()


def _songs(n: int = 3) -> list[EvalSong]:
    g = torch.Generator().manual_seed(1)
    return [EvalSong(torch.randn(8, 20 + 4 * i, generator=g), [1, 5, 7], torch.randn(8, 6, generator=g) if i else None)
            for i in range(n)]


def test_same_ids_give_the_same_losses_and_other_ids_other_losses() -> None:
    model, songs = _model(), _songs()
    ids = [torch.randint(0, 16, (s.latents.shape[-1],)) for s in songs]
    other = [(i + 3) % 16 for i in ids]
    out = teacher_forced_losses(model, songs, {"a": ids, "b": ids, "c": other}, seed=4, batch_size=2)
    assert out["a"].ar == out["b"].ar and out["a"].flow == out["b"].flow  # shared noise and timesteps
    assert out["a"].flow != out["c"].flow and out["a"].ar != out["c"].ar
    # frames: every id plus one EOS target per song (songs cut to whole patches of 4)
    assert out["a"].frames == sum(s.latents.shape[-1] // 4 * 4 + 1 for s in songs)
    again = teacher_forced_losses(model, songs, {"a": ids}, seed=4, batch_size=2)
    assert again["a"].flow == out["a"].flow


def test_id_statistics() -> None:
    a = [torch.tensor([0, 0, 1, 1]), torch.tensor([2, 2])]
    assert switch_rate(a) == 1 / 4
    assert math.isclose(unigram_entropy(a, 4), math.log(3), rel_tol=1e-6)
    assert most_frequent_code_rate(a, 4) == 2 / 6
    assert agreement(a, [torch.tensor([0, 1, 1, 1]), torch.tensor([2, 0])]) == 4 / 6
    relabelled = [torch.tensor([3, 3, 0, 0]), torch.tensor([1, 1])]
    assert matched_agreement(relabelled, a, 4, 4) == 1.0
    assert ar_information(0.5, a, 4) == unigram_entropy(a, 4) - 0.5
    assert gap_closed(perm=5.0, recovered=3.0, hidden=1.0) == 0.5
    assert math.isnan(gap_closed(perm=1.0, recovered=3.0, hidden=1.0))
