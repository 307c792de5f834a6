"""Parity of the generation loop and the DiT sampler with the official code (``upstream_tiny_a``, fp32)."""

from __future__ import annotations

import pytest
import torch

from songbloom.inference.dit_sampler import PatchDenoiser
from songbloom.inference.generate import (
    GenerationHooks,
    SamplingParams,
    encode_cfg_conditions,
    generate,
)

TOL = 1e-5
GEN_CASES = ["gen", "gen_eos", "gen_eos_first"]


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0


@pytest.mark.parametrize(
    ("case", "mode", "temp"), [("t095", "h", 0.95), ("t100", "h", 1.0), ("t095_nocfg", "none", 0.95)]
)
def test_dit_sampler_matches_release(tiny_a_model, tiny_a_cases, case, mode, temp):
    c = tiny_a_cases
    steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    with torch.inference_mode():
        s = tiny_a_model.embed_sketch(c["dit.sketch_ids"])
        den = PatchDenoiser(tiny_a_model, c["dit.steps"], mode, c["dit.cfg_coef"])
        out = den.sample(
            c["dit.noise"],
            c["dit.h"],
            s,
            c["dit.prev_latent"],
            temp,
            on_step=lambda i, x, t, v: steps.append((x.clone(), t.clone(), v.clone())),
        )
    assert _maxdiff(s, c["dit.sketch_emb"]) <= TOL
    assert len(steps) == c["dit.steps"]
    assert _maxdiff(torch.stack([x for x, _, _ in steps]), c[f"dit.{case}.step_x"]) <= TOL
    assert _maxdiff(torch.stack([t for _, t, _ in steps]), c[f"dit.{case}.step_t"]) <= TOL
    assert _maxdiff(torch.stack([v for _, _, v in steps]), c[f"dit.{case}.step_v"]) <= TOL
    assert _maxdiff(out, c[f"dit.{case}.out"]) <= TOL


def _setup(model, c, case, exact):
    inf = c[f"{case}.inference"]
    ids = model.condition_provider.lyrics.vocab.tokenize(c[f"{case}.lyric"]).ids
    with torch.inference_mode():
        cond, null = encode_cfg_conditions(model, [ids], c[f"{case}.prompt_latent"])
    params = SamplingParams(
        cfg_coef=inf["cfg_coef"],
        temp=inf["temp"],
        diff_temp=inf["diff_temp"],
        top_k=inf["top_k"],
        penalty_repeat=bool(inf["penalty_repeat"]),
        penalty_window=inf["penalty_window"],
        steps=inf["steps"],
        dit_cfg_type=inf["dit_cfg_type"],
        max_frames=c[f"{case}.max_frames"],
        exact_release_rng=exact,
    )
    return cond, null, params


def test_cfg_conditions_match_release(tiny_a_model, tiny_a_cases):
    c = tiny_a_cases
    cond, null, _ = _setup(tiny_a_model, c, "gen", True)
    assert _maxdiff(torch.cat([cond.lyrics, null.lyrics]), c["gen.cond_lyrics"]) <= TOL
    assert _maxdiff(torch.cat([cond.prompt, null.prompt]), c["gen.cond_prompt"]) <= TOL
    assert torch.equal(torch.cat([cond.prompt_mask, null.prompt_mask]), c["gen.cond_prompt_mask"])


@pytest.mark.parametrize(
    ("exact", "static"), [(True, False), (False, False), (True, True)], ids=["exact_rng", "fast", "exact_static_lm"]
)
@pytest.mark.parametrize("case", GEN_CASES)
def test_generation_replay(tiny_a_model, tiny_a_cases, case, exact, static):
    """Feed the recorded draws through the hooks; every intermediate must match the official run.

    ``static`` runs the graph-ready LM step (what CUDA graphs replay on a GPU) eagerly on the CPU.
    """
    c = tiny_a_cases
    cond, null, params = _setup(tiny_a_model, c, case, exact)
    recorded_tokens, recorded_noise = c[f"{case}.step_tokens"], c[f"{case}.dit_noise"]
    probs, logits, patches = [], [], []

    def token_sampler(rec, p):
        probs.append(p.clone())
        return recorded_tokens[rec.step : rec.step + 1]

    hooks = GenerationHooks(
        token_sampler=token_sampler,
        dit_noise=lambda patch, rows, shape, dtype, device: recorded_noise[patch : patch + 1],
        on_step=lambda rec: logits.append(rec.logits.clone()),
        on_patch=patches.append,
    )
    out = generate(tiny_a_model, cond, null, params, hooks=hooks, static_decode=static)[0]

    n_ref_steps = c[f"{case}.step_probs"].shape[0]
    n_ref_patches = c[f"{case}.n_patches_sampled"]
    if exact:  # every official draw happens, including the discarded patch
        assert len(probs) == n_ref_steps and len(patches) == n_ref_patches
    else:  # fast mode stops at the EOS token / before the patch past the length limit
        assert len(probs) <= n_ref_steps and len(patches) <= n_ref_patches
    n_steps, n_patches = len(probs), len(patches)
    assert _maxdiff(torch.cat(probs), c[f"{case}.step_probs"][:n_steps]) <= TOL
    assert _maxdiff(torch.stack(logits), c[f"{case}.step_logits_cond_uncond"][:n_steps]) <= TOL
    if n_patches:
        assert _maxdiff(torch.cat([p.h for p in patches]), c[f"{case}.dit_h"][:n_patches]) <= TOL
        assert _maxdiff(torch.cat([p.history for p in patches]), c[f"{case}.dit_history"][:n_patches]) <= TOL
        assert _maxdiff(torch.cat([p.latent for p in patches]), c[f"{case}.dit_out"][:n_patches]) <= TOL
        assert torch.equal(torch.cat([p.tokens for p in patches]), c[f"{case}.patch_tokens"][:n_patches])
    assert _maxdiff(out.release_latent()[None], c[f"{case}.latent_seq"]) <= TOL
    assert torch.equal(out.tokens[None], c[f"{case}.token_seq"])
    if case != "gen":
        assert out.stop_reason == "eos"
    elif not exact:
        assert out.stop_reason == "max_length"


@pytest.mark.parametrize("exact", [True, False], ids=["exact_rng", "fast"])
@pytest.mark.parametrize("case", GEN_CASES)
def test_seeded_generation_reproduces_official_tokens(tiny_a_model, tiny_a_cases, case, exact):
    """Global RNG + the official seed: the same multinomial/randn order gives the recorded tokens."""
    c = tiny_a_cases
    cond, null, params = _setup(tiny_a_model, c, case, exact)
    steps = []
    torch.manual_seed(c[f"{case}.seed"])
    out = generate(tiny_a_model, cond, null, params, hooks=GenerationHooks(on_step=lambda r: steps.append(r.tokens)))[0]
    sampled = torch.cat(steps)
    ref = c[f"{case}.step_tokens"]
    assert torch.equal(sampled, ref[: len(sampled)])
    if exact:
        assert len(sampled) == len(ref)
        # The RNG is left where the official run left it: replay its call order (per patch: block_size
        # multinomials on the recorded rows, then one randn of the DiT noise) and compare the next draw.
        after = torch.rand(8)
        torch.manual_seed(c[f"{case}.seed"])
        block = tiny_a_model.cfg.block_size
        for i, p in enumerate(c[f"{case}.step_probs"]):
            torch.multinomial(p[None].clone(), 1)
            if i % block == block - 1:
                torch.randn((1, block, tiny_a_model.cfg.latent_dim))
        assert torch.equal(after, torch.rand(8))
    assert torch.equal(out.tokens[None], c[f"{case}.token_seq"])
    assert _maxdiff(out.release_latent()[None], c[f"{case}.latent_seq"]) <= TOL


@pytest.mark.gpu
def test_generation_replay_on_gpu_with_cuda_graphs(tiny_a_model, tiny_a_cases):
    """The fixture replay on CUDA (fp32) with the graph-replayed LM steps and DiT patches."""
    import copy

    c = tiny_a_cases
    model = copy.deepcopy(tiny_a_model).cuda()
    cond, null, params = _setup(tiny_a_model, c, "gen", True)
    cond, null = (
        type(ct)(ct.prompt.cuda(), ct.prompt_mask.cuda(), ct.lyrics.cuda(), ct.lyrics_mask.cuda())
        for ct in (cond, null)
    )
    tokens, noise = c["gen.step_tokens"].cuda(), c["gen.dit_noise"].cuda()
    probs, patches = [], []

    def token_sampler(rec, p):
        probs.append(p.cpu())
        return tokens[rec.step : rec.step + 1]

    hooks = GenerationHooks(
        token_sampler=token_sampler,
        dit_noise=lambda patch, rows, shape, dtype, device: noise[patch : patch + 1],
        on_patch=lambda r: patches.append(r.latent.cpu()),
    )
    out = generate(model, cond, null, params, hooks=hooks, cuda_graphs=True)[0]
    assert _maxdiff(torch.cat(probs), c["gen.step_probs"]) <= 1e-4
    assert _maxdiff(torch.cat(patches), c["gen.dit_out"]) <= 1e-4
    assert _maxdiff(out.latent[None], c["gen.latent_seq"]) <= 1e-4
