"""Songs from lyrics + prompts: prompt encoding, batched generation, chunked fp32 VAE decode.

Random numbers: each song owns a ``torch.Generator`` seeded with its own seed and used in the official
order (prompt posterior noise, then sketch draws and DiT noise), so a song's audio depends only on its
seed, never on the batch it ran in. ``exact_release_rng`` instead runs one song at a time on the global
RNG with every official draw (null-row prompt noise, tokens after EOS, the discarded patch): after one
``torch.manual_seed(s)`` a sequence of songs matches the official ``infer.py`` run seeded the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from songbloom.inference.generate import GeneratedSong, SamplingParams, encode_cfg_conditions, generate
from songbloom.inference.prompt import PromptMoments, sample_prompt_latent

logger = logging.getLogger(__name__)


@dataclass
class SongRequest:
    """One song to generate."""

    name: str  # output stem, e.g. "<idx>_s<i>"
    lyric_ids: list[int]
    prompt: PromptMoments | None  # encoded once per prompt file, sampled per song
    seed: int | None = None  # per-song generator seed (ignored with exact_release_rng)


@dataclass
class SongResult:
    request: SongRequest
    song: GeneratedSong
    audio: torch.Tensor  # (channels, samples) float32 on the CPU
    sample_rate: int
    # The prompt latent the song was conditioned on, (latent_dim, F) float32 on the CPU (None without a prompt):
    # with prompt_latent="sample" it is this song's own posterior draw, which nothing else records.
    prompt_latent: torch.Tensor | None = None


class SongBloomPipeline:
    """Wraps a built :class:`songbloom.api.SongBloom` (generator in fp32/bf16, VAE fp32) for generation."""

    def __init__(
        self,
        bundle,
        params: SamplingParams,
        *,
        prompt_latent: str = "sample",
        chunked_decode: bool = True,
        cuda_graphs: bool | None = None,
    ):
        self.bundle = bundle
        self.cuda_graphs = cuda_graphs
        self.model = bundle.model
        self.vae = bundle.vae
        self.params = params
        self.prompt_latent = prompt_latent
        self.chunked_decode = chunked_decode

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def sample_rate(self) -> int:
        return int(self.vae.sample_rate)

    def _generator(self, seed: int | None) -> torch.Generator | None:
        if self.params.exact_release_rng:
            return None
        gen = torch.Generator(device=self.device)
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        return gen

    @torch.inference_mode()
    def generate(
        self,
        requests: Sequence[SongRequest],
        progress: Callable[[int, list[int]], None] | None = None,
    ) -> list[SongResult]:
        """Generate a batch of songs (exact_release_rng allows one at a time)."""
        if self.params.exact_release_rng and len(requests) != 1:
            raise ValueError("exact_release_rng reproduces the official single-song RNG stream: use batches of 1")
        gens = [self._generator(r.seed) for r in requests]
        latents = [
            sample_prompt_latent(
                self.vae,
                _moved(r.prompt, self.device),  # the VAE may sit on another device (CPU beside MPS)
                self.prompt_latent,
                generator=g,
                exact_release_rng=self.params.exact_release_rng,
            )
            for r, g in zip(requests, gens, strict=True)
        ]
        frames = max([lat.shape[-1] for lat in latents if lat is not None], default=0)
        d = self.model.cfg.latent_dim
        batch_latent = torch.zeros(len(requests), d, frames, device=self.device)
        for i, lat in enumerate(latents):
            if lat is not None:
                batch_latent[i, :, : lat.shape[-1]] = lat[0].to(self.device)
        cond, null = encode_cfg_conditions(
            self.model, [r.lyric_ids for r in requests], batch_latent.to(self.dtype) if frames else None
        )
        songs = generate(
            self.model,
            cond,
            null,
            self.params,
            generators=None if self.params.exact_release_rng else gens,
            progress=progress,
            cuda_graphs=self.cuda_graphs,
        )
        results = []
        for req, song, prompt in zip(requests, songs, latents, strict=True):
            if song.num_frames == 0:
                logger.warning(
                    "%s: EOS in the first patch; as the official sampler does, the output is %d frames of the "
                    "zero latent",
                    req.name,
                    song.block_size,
                )
            latent = song.release_latent().to(next(self.vae.parameters()).device)[None].float()
            audio = self.vae.decode(latent, chunked=self.chunked_decode)[0].cpu()
            prompt_latent = None if prompt is None else prompt[0].float().cpu()
            results.append(SongResult(req, song, audio, self.sample_rate, prompt_latent))
        return results


def _moved(moments: PromptMoments | None, device: torch.device) -> PromptMoments | None:
    if moments is None or moments.mean.device == device:
        return moments
    return PromptMoments(moments.mean.to(device), moments.scale.to(device))
