"""KV-cache decoding, batched generation and the token-sampling rules."""

from __future__ import annotations

import pytest
import torch

from songbloom.config import SongBloomConfig
from songbloom.inference.generate import GenerationHooks, SamplingParams, encode_cfg_conditions, generate
from songbloom.inference.sampling import apply_repetition_penalty, sample_tokens, sampling_probs
from songbloom.models.conditioners import ConditionTensors
from songbloom.models.songbloom import SongBloomModel


def test_incremental_decoding_equals_full_forward():
    torch.manual_seed(0)
    model = SongBloomModel(SongBloomConfig.from_name("tiny").model).eval()
    lm = model.ar_transformer
    x = torch.randn(3, 57, model.cfg.dim)
    with torch.inference_mode():
        full = lm(x)
        cache = lm.new_cache(3, 64)
        parts = [lm(x[:, :30], cache), lm(x[:, 30:37], cache), lm(x[:, 37:38], cache)]
        parts += [lm(x[:, i : i + 1], cache) for i in range(38, 50)]
        parts.append(lm(x[:, 50:], cache))
    assert cache.length == 57
    assert (torch.cat(parts, dim=1) - full).abs().max().item() <= 1e-5


def _songs(model, n):
    vocab = model.condition_provider.lyrics.vocab
    texts = ["[verse] n i h ao , [chorus] w o", "[intro] [intro] , [verse] AA1 B", "[chorus] . . a i"][:n]
    ids = [vocab.tokenize(t).ids for t in texts]
    torch.manual_seed(5)
    latents = torch.randn(n, model.cfg.latent_dim, 20).to(model.project_in.weight.device)
    with torch.inference_mode():
        return encode_cfg_conditions(model, ids, latents)


def _maxdiff(a, b):
    assert a.shape == b.shape
    return (a - b).abs().max().item() if a.numel() else 0.0


def _gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def _slice(ct, i):
    rows = slice(i, i + 1)
    return ConditionTensors(ct.prompt[rows], ct.prompt_mask[rows], ct.lyrics[rows], ct.lyrics_mask[rows])


@pytest.mark.parametrize("dit_cfg_type", ["h", "global", "none"])
def test_batch_rows_equal_solo_runs(tiny_a_model, dit_cfg_type):
    """With one generator per song, a song's output does not depend on the rest of the batch."""
    params = SamplingParams(top_k=20, steps=4, max_frames=64, dit_cfg_type=dit_cfg_type)
    cond, null = _songs(tiny_a_model, 3)
    seeds = [21, 22, 23]
    batch = generate(tiny_a_model, cond, null, params, generators=_gens(seeds))
    assert len({s.num_frames for s in batch}) > 1, "pick seeds whose songs end at different patches"
    for i, seed in enumerate(seeds):
        solo = generate(tiny_a_model, _slice(cond, i), _slice(null, i), params, generators=_gens([seed]))[0]
        assert torch.equal(solo.tokens, batch[i].tokens)
        assert _maxdiff(solo.latent, batch[i].latent) <= 1e-5
        assert solo.stop_reason == batch[i].stop_reason


def test_rows_finish_independently(tiny_a_model):
    """Force EOS in song 0 during patch 1: it stops with one patch; the other songs are unaffected."""
    params = SamplingParams(top_k=20, steps=4, max_frames=64)
    cond, null = _songs(tiny_a_model, 3)
    seeds = [21, 22, 23]
    free = generate(tiny_a_model, cond, null, params, generators=_gens(seeds))
    assert free[0].num_frames > 16, "pick seeds where song 0 runs past patch 1"
    eos = tiny_a_model.cfg.eos_id
    gens = _gens(seeds)

    def sampler(rec, probs):
        toks = sample_tokens(probs, None, [gens[r] for r in rec.rows])
        if rec.patch == 1 and rec.step == 16 + 3 and 0 in rec.rows:
            toks[rec.rows.index(0)] = eos
        return toks

    forced = generate(tiny_a_model, cond, null, params, generators=gens, hooks=GenerationHooks(token_sampler=sampler))
    assert forced[0].stop_reason == "eos" and forced[0].num_frames == 16
    assert torch.equal(forced[0].tokens, free[0].tokens[:16])
    for i in (1, 2):
        assert torch.equal(forced[i].tokens, free[i].tokens)
        assert _maxdiff(forced[i].latent, free[i].latent) <= 1e-5


def test_max_patches_follows_release_rule():
    p = SamplingParams(max_frames=4000)
    assert p.max_patches(16) == 250
    assert SamplingParams(max_frames=64).max_patches(16) == 4
    # Not a multiple of the patch: the release keeps sampling while 1 + 17 n <= max_frames / 16 * 17.
    assert SamplingParams(max_frames=100).max_patches(16) == 7


def test_release_penalty_quirks():
    num_pitch = 6  # ids 0..5 are codes, 6 is EOS
    logits = torch.tensor([[2.0, -2.0, 1.0, 3.0, 0.5, -1.0, 4.0]])
    pool = torch.tensor([[6, 6, 0, 1, 1, 5]])  # EOS padding, code 0, code 1 twice, last code 5
    out = apply_repetition_penalty(logits, pool, num_pitch, "release")
    assert out[0, 0] == pytest.approx(2.0 / 1.1)
    assert out[0, 1] == pytest.approx(-2.0 / 1.1)  # presence only (not 1.1**2); a negative logit moves UP
    assert out[0, 1] > logits[0, 1]
    assert torch.equal(out[0, 2:], logits[0, 2:])  # absent codes, last code (5) and EOS untouched
    fixed = apply_repetition_penalty(logits, pool, num_pitch, "corrected")
    assert fixed[0, 1] == pytest.approx(-2.2) and fixed[0, 5] == pytest.approx(-1.1)
    assert fixed[0, 6] == logits[0, 6]
    assert apply_repetition_penalty(logits, None, num_pitch, "release") is logits


def test_top_k_keeps_ties_and_top_p_maps_back():
    logits = torch.log(torch.tensor([[0.4, 0.2, 0.2, 0.1, 0.1]]))
    probs, index_map = sampling_probs(logits, 1.0, top_k=2)
    assert index_map is None
    assert torch.allclose(probs, torch.tensor([[0.5, 0.25, 0.25, 0.0, 0.0]]))  # the tie at rank 2 is kept
    probs, index_map = sampling_probs(logits, 1.0, top_p=0.5)
    assert torch.allclose(probs[0, :2], torch.tensor([2 / 3, 1 / 3])) and probs[0, 2:].sum() == 0
    draws = {int(sample_tokens(probs, index_map, [torch.Generator().manual_seed(s)])) for s in range(40)}
    assert draws <= {0, 1, 2} and 0 in draws


def test_greedy_when_temperature_zero(tiny_a_model):
    params = SamplingParams(temp=0.0, steps=2, max_frames=32)
    cond, null = _songs(tiny_a_model, 1)
    a = generate(tiny_a_model, cond, null, params, generators=_gens([0]))[0]
    b = generate(tiny_a_model, cond, null, params, generators=_gens([99]))[0]
    assert torch.equal(a.tokens, b.tokens)  # token choice is deterministic; only the DiT noise differs


@pytest.mark.parametrize("top", [{"top_k": 20}, {"top_p": 0.9}])
def test_bf16_generation_runs(tiny_a_model, top):
    """bf16 generator (as with --dtype bfloat16): the DiT noise and the Euler state are bf16 too
    (docs/design/fidelity.md#bf16-casts-everything)."""
    import copy

    model = copy.deepcopy(tiny_a_model).to(torch.bfloat16)
    params = SamplingParams(steps=4, max_frames=32, penalty_mode="release", **top)
    cond, null = _songs(model, 2)
    noises = []
    hooks = GenerationHooks(on_patch=lambda r: noises.append(r.noise))
    out = generate(model, cond, null, params, generators=_gens([21, 22]), hooks=hooks)
    assert noises and all(n.dtype == torch.bfloat16 for n in noises)
    for song in out:
        assert song.latent.dtype == torch.float32 and torch.isfinite(song.latent).all()
        assert song.tokens.max() < model.cfg.num_pitch if song.num_frames else True


def test_static_decode_step_matches_cached_forward():
    """The graph-ready LM step (tensor positions, masked fixed windows) equals the dynamic cached step."""
    from songbloom.inference.graphs import StaticDecodeStep

    torch.manual_seed(1)
    model = SongBloomModel(SongBloomConfig.from_name("tiny").model).eval()
    lm = model.ar_transformer
    x = torch.randn(2, 40, model.cfg.dim)
    static = StaticDecodeStep(model, max_len=48, bucket=8)
    with torch.inference_mode():
        ref_cache, st_cache = lm.new_cache(2, 48), lm.new_cache(2, 48)
        lm(x[:, :20], ref_cache)
        lm(x[:, :20], st_cache)
        for i in range(20, 40):
            ref = lm(x[:, i : i + 1], ref_cache)[:, -1]
            window = static.window(st_cache.length, st_cache.max_len)
            hidden, logits = static(x[:, i : i + 1], torch.tensor([i]), st_cache, window)
            st_cache.length += 1
            assert (hidden - ref).abs().max().item() <= 1e-5
            assert (logits - model.classify(ref)).abs().max().item() <= 1e-5
    assert static.window(7, 48) == 8 and static.window(8, 48) == 16 and static.window(47, 48) == 48


@pytest.mark.gpu
@pytest.mark.parametrize("dit_cfg_type", ["h", "global"])
def test_cuda_graphs_match_eager(tiny_a_model, dit_cfg_type):
    """On a GPU the LM steps and DiT patches replay as CUDA graphs; they must give the eager results."""
    import copy

    model = copy.deepcopy(tiny_a_model).cuda()
    params = SamplingParams(top_k=20, steps=4, max_frames=64, dit_cfg_type=dit_cfg_type)
    cond, null = _songs(model, 3)

    def gens():
        return [torch.Generator(device="cuda").manual_seed(s) for s in (21, 22, 23)]

    eager = generate(model, cond, null, params, generators=gens(), cuda_graphs=False)
    graphed = generate(model, cond, null, params, generators=gens(), cuda_graphs=True)
    for a, b in zip(eager, graphed, strict=True):
        assert torch.equal(a.tokens, b.tokens)
        assert _maxdiff(a.latent, b.latent) <= 1e-4
