"""Condition encoders (lyrics, style prompt), the prefix fuser, and condition dropout for CFG training.

The LM sees a fixed-length prefix ``[prompt latents (prompt_max_len) | lyric tokens (lyric_max_len)]``
before the music stream. Zero/blank padding is not masked: the release never passes an attention mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from songbloom.text.vocab import Vocabulary


@dataclass
class LyricLayout:
    """Per-token lookups of the lyric conditioner for one lyric (before truncation)."""

    token_ids: torch.Tensor  # (L,) vocabulary ids
    special_ids: torch.Tensor  # (L,) second lookup in the same table: the token itself or its structure tag
    sentence_ids: torch.Tensor  # (L,) sentence index within the current structure (0 for tags and separators)


class LyricConditioner(nn.Module):
    """Phoneme-token lyric encoder (release ``PhonemeTokenizerConditioner`` in ``sum`` mode).

    Each token embeds as ``E[token] + E[special] + S[sentence]``:
      * a structure tag, ``,`` or ``.`` has special = itself and sentence 0, i.e. ``2 E[tok] + S[0]``;
      * any other token (phonemes, and ``''`` = id 0 from a double space) has special = the most recent
        structure tag (0 before the first) and sentence = a counter that restarts at 1 at each tag and
        increments at each ``.`` (capped at ``max_sentences - 1``); ``,`` resets nothing.
    Rows are truncated to ``max_len`` or padded with the stored ``blank_emb`` (a frozen parameter that is
    part of the state dict, not assumed zero).
    """

    def __init__(self, vocab: Sequence[str], dim: int, max_len: int, max_sentences: int = 50):
        super().__init__()
        self.vocab = Vocabulary(list(vocab))
        self.max_len = max_len
        self.max_sentences = max_sentences
        self.output_proj = nn.Embedding(len(self.vocab), dim, padding_idx=0)
        self.sentence_idx_in_structure_emb = nn.Embedding(max_sentences, dim, padding_idx=0)
        self.blank_emb = nn.Parameter(torch.zeros(1, dim), requires_grad=False)

    def layout(self, token_ids: Sequence[int] | torch.Tensor) -> LyricLayout:
        """Compute the special and sentence ids of a token sequence."""
        ids = [int(i) for i in token_ids]
        structure, split_struct, split_sent = (
            self.vocab.structure_ids, self.vocab.structure_split_ids, self.vocab.sentence_split_ids
        )
        special, sentence = [], []
        current, counter = 0, 1
        for tok in ids:
            if tok in structure:
                current, counter = tok, 1
                special.append(tok)
                sentence.append(0)
            elif tok in split_sent:
                special.append(tok)
                sentence.append(0)
                counter += 1
            elif tok in split_struct:
                special.append(tok)
                sentence.append(0)
            else:
                special.append(current)
                sentence.append(min(counter, self.max_sentences - 1))
        as_t = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
        return LyricLayout(as_t(ids), as_t(special), as_t(sentence))

    def forward(self, batch_token_ids: Sequence[Sequence[int] | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: one id sequence per row. Returns (embeds (B, max_len, dim), mask (B, max_len) float)."""
        device = self.output_proj.weight.device
        rows, masks = [], []
        for ids in batch_token_ids:
            lay = self.layout(ids)
            n = min(len(lay.token_ids), self.max_len)
            tok, spe, sen = (x[:n].to(device) for x in (lay.token_ids, lay.special_ids, lay.sentence_ids))
            emb = self.output_proj(tok) + self.output_proj(spe) + self.sentence_idx_in_structure_emb(sen)
            pad = self.blank_emb.expand(self.max_len - n, -1).to(emb.dtype)
            rows.append(torch.cat([emb, pad], dim=0))
            mask = torch.zeros(self.max_len, device=device)
            mask[:n] = 1.0
            masks.append(mask)
        return torch.stack(rows), torch.stack(masks)


class PromptConditioner(nn.Module):
    """Style-prompt encoder: a bias-free projection of VAE latent frames into the LM width.

    The mask length of a row is ``round(len_samples * max_len / padded_len)`` (half to even), computed from
    the waveform lengths of the batch as the release does; rows are multiplied by it, so a null prompt
    (length 0) is all zeros.
    """

    def __init__(self, latent_dim: int, dim: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.output_proj = nn.Linear(latent_dim, dim, bias=False)

    def forward(
        self,
        latents: torch.Tensor,
        lengths: torch.Tensor | None = None,
        padded_length: int | float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            latents: (B, latent_dim, F) prompt latents (F may be 0 for an all-null batch).
            lengths: (B,) valid length of each row in the unit of ``padded_length`` (waveform samples in
                the release; latent frames work equally). ``None`` = every row full.
            padded_length: the batch's padded length in that unit.
        Returns (embeds (B, max_len, dim), mask (B, max_len) int32).
        """
        b, _, f = latents.shape
        device = self.output_proj.weight.device
        emb = self.output_proj(latents.transpose(1, 2).to(self.output_proj.weight.dtype))
        if f >= self.max_len:
            emb = emb[:, : self.max_len]
        else:
            emb = torch.cat([emb, emb.new_zeros(b, self.max_len - f, emb.shape[-1])], dim=1)
        if lengths is None:
            mask_len = torch.full((b,), self.max_len, device=device)
        else:
            total = float(padded_length if padded_length is not None else max(int(lengths.max()), 1))
            mask_len = torch.round(lengths.to(device).double() * self.max_len / max(total, 1.0))
        mask = (torch.arange(self.max_len, device=device)[None, :] < mask_len[:, None]).int()
        return emb * mask[..., None].to(emb.dtype), mask


@dataclass
class ConditionTensors:
    """Encoded conditions of a batch, ready to be fused into the LM prefix."""

    prompt: torch.Tensor  # (B, prompt_max_len, dim)
    prompt_mask: torch.Tensor  # (B, prompt_max_len) int32
    lyrics: torch.Tensor  # (B, lyric_max_len, dim)
    lyrics_mask: torch.Tensor  # (B, lyric_max_len) float

    def prefix(self) -> torch.Tensor:
        """The fused LM prefix ``[prompt | lyrics]``.

        The release fuser prepends each condition in front of the previous ones while walking text
        conditions first, then wav, so the prompt ends up first (docs/design/fidelity.md#prefix-order).
        """
        return torch.cat([self.prompt, self.lyrics.to(self.prompt.dtype)], dim=1)


class ConditionProvider(nn.Module):
    """Holds the conditioners under the release names ``conditioners.{lyrics,prompt_wav}``."""

    def __init__(self, lyrics: LyricConditioner, prompt: PromptConditioner):
        super().__init__()
        self.conditioners = nn.ModuleDict({"prompt_wav": prompt, "lyrics": lyrics})

    @property
    def lyrics(self) -> LyricConditioner:
        return self.conditioners["lyrics"]  # type: ignore[return-value]

    @property
    def prompt(self) -> PromptConditioner:
        return self.conditioners["prompt_wav"]  # type: ignore[return-value]


NULL_LYRIC: tuple[int, ...] = (0,)
"""Token ids of the null (unconditional) lyric: ``None`` tokenises to ``''`` = one id-0 token."""


class ConditionDropout:
    """Classifier-free-guidance and attribute dropout decisions, from a private RNG.

    ``granularity="batch"`` reproduces the release: one uniform per call decides for the whole batch
    (``cfg``), then one uniform per configured attribute in config order (``attributes``); both streams
    come from separate generators seeded 1234, untouched by the global RNG.
    ``granularity="sample"`` (our default for training) draws per row: with batch-level decisions a 10%
    CFG drop makes 10% of optimizer steps purely unconditional and, under DDP with identical seeds, every
    rank drops together; per-row decisions give every step the intended mix. Use ``seed`` offsets per rank.

    Returns, for a batch, a mapping attribute -> bool tensor (B,) of rows to nullify.
    """

    def __init__(
        self,
        cfg_p: float,
        attribute_p: dict[str, dict[str, float]],
        *,
        granularity: str = "sample",
        seed: int = 1234,
    ):
        if granularity not in ("sample", "batch"):
            raise ValueError(f"condition dropout granularity must be 'sample' or 'batch', got {granularity!r}")
        self.cfg_p = float(cfg_p)
        self.attribute_p = [(name, float(p)) for group in attribute_p.values() for name, p in group.items()]
        self.granularity = granularity
        self.cfg_gen = torch.Generator().manual_seed(seed)
        self.att_gen = torch.Generator().manual_seed(seed)

    @property
    def attributes(self) -> list[str]:
        return [name for name, _ in self.attribute_p]

    def __call__(self, batch_size: int) -> dict[str, torch.Tensor]:
        n = 1 if self.granularity == "batch" else batch_size
        drop_all = torch.rand(n, generator=self.cfg_gen) < self.cfg_p
        out = {}
        for name, p in self.attribute_p:
            u = torch.rand(n, generator=self.att_gen)
            out[name] = (u < p) | drop_all
        if self.granularity == "batch":
            out = {k: v.expand(batch_size).clone() for k, v in out.items()}
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"cfg_gen": self.cfg_gen.get_state(), "att_gen": self.att_gen.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.cfg_gen.set_state(state["cfg_gen"])
        self.att_gen.set_state(state["att_gen"])
