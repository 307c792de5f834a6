"""A built SongBloom: config, generator, VAE and lyric vocabulary, and how a release directory becomes one.

Every checkpoint format returns this bundle; :mod:`songbloom.api` re-exports it for users. The generator
(``sb.model``) may run in bf16; the VAE always runs in float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from songbloom.checkpoints.release_files import resolve_release_files
from songbloom.checkpoints.release_state import read_release_checkpoint
from songbloom.checkpoints.strict import strict_load
from songbloom.checkpoints.vae import load_vae_checkpoint
from songbloom.config import SongBloomConfig
from songbloom.models.conditioners import ConditionTensors
from songbloom.models.songbloom import ForwardOutput, SongBloomModel
from songbloom.models.vae import VAEConfig
from songbloom.models.vae_factory import AnyVAE, AnyVAEConfig, build_vae, vae_config_from_json
from songbloom.text.vocab import Vocabulary

logger = logging.getLogger(__name__)


def release_yaml_candidates(directory: Path) -> list[Path]:
    """The model YAMLs of a release directory: files with a ``model:`` block and a ``pretrained_path``."""
    out = []
    for p in sorted(directory.glob("*.y*ml")):
        try:
            head = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "\nmodel:" in "\n" + head and "pretrained_path" in head:
            out.append(p)
    return out


def find_release_yaml(path: str | Path) -> Path:
    """Return the model YAML of a release directory (or the path itself when it is a YAML file)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such release directory or YAML file")
    candidates = release_yaml_candidates(path)
    if len(candidates) != 1:
        found = [c.name for c in candidates] or "none"
        raise FileNotFoundError(
            f"{path}: expected exactly one model YAML (with 'model:' and 'pretrained_path'), found {found}; "
            "pass the YAML file itself"
        )
    return candidates[0]


@dataclass
class SongBloom:
    """A built SongBloom: config, generator, VAE and lyric vocabulary."""

    config: SongBloomConfig
    model: SongBloomModel
    vae: AnyVAE
    vocab: Vocabulary
    # The language the model was trained on, when its checkpoint or export records one (text.language of the run).
    training_language: str | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_release_dir(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        load_weights: bool = True,
    ) -> SongBloom:
        """Build from a release directory: a model YAML whose ``???`` paths resolve to its own directory.

        Weights load strictly. The generator comes from ``model.*`` of the ``.pt``; the VAE from its
        ``vae.vae.*`` block (or the release-era duplicate), else from the VAE checkpoint the YAML names.
        """
        yaml_path = find_release_yaml(path)
        cfg = SongBloomConfig.from_release_yaml(yaml_path)
        if not cfg.vae_config_path:
            raise ValueError(f"{yaml_path}: vae.vae_cfg is not set")
        vae = build_vae(vae_config_from_json(cfg.vae_config_path))
        model = SongBloomModel(cfg.model)
        if load_weights:
            if not cfg.pretrained_path or not Path(cfg.pretrained_path).is_file():
                raise FileNotFoundError(f"{yaml_path}: pretrained_path {cfg.pretrained_path!r} does not exist")
            gen_sd, vae_sd, report = read_release_checkpoint(cfg.pretrained_path, require_vae=False)
            strict_load(model, gen_sd, what=f"generator from {cfg.pretrained_path}")
            if not vae_sd:
                if not cfg.vae_ckpt_path:
                    raise ValueError(f"{cfg.pretrained_path} holds no VAE and {yaml_path} names no vae.vae_ckpt")
                vae_sd = load_vae_checkpoint(cfg.vae_ckpt_path)
            strict_load(vae, vae_sd, what="VAE")
            logger.info("loaded %s (%s)", cfg.pretrained_path, report)
        return cls._finish(cfg, model, vae, device, dtype)

    @classmethod
    def from_pretrained(
        cls,
        name: str = "songbloom_full_150s",
        *,
        local_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        local_only: bool = False,
    ) -> SongBloom:
        """Build a released model by name, from ``local_dir`` or the Hugging Face Hub."""
        files = resolve_release_files(name, local_dir, local_only=local_only)
        return cls.from_release_dir(files.yaml, device=device, dtype=dtype)

    @classmethod
    def from_config(
        cls, cfg: SongBloomConfig, vae_config: AnyVAEConfig | None = None, *, device="cpu", dtype=torch.float32
    ) -> SongBloom:
        """Randomly initialised model (training from scratch, tests)."""
        vae = build_vae(vae_config or VAEConfig.release())
        return cls._finish(cfg, SongBloomModel(cfg.model), vae, device, dtype)

    @classmethod
    def _finish(cls, cfg, model, vae, device, dtype) -> SongBloom:
        if vae.latent_dim != cfg.model.latent_dim:
            raise ValueError(f"VAE latent_dim {vae.latent_dim} != model.latent_dim {cfg.model.latent_dim}")
        if vae.sample_rate != cfg.sr:
            raise ValueError(f"VAE sample_rate {vae.sample_rate} != config sr {cfg.sr}")
        model = model.to(device=device, dtype=dtype).eval()
        vae = vae.to(device=device).eval()  # stays float32
        return cls(cfg, model, vae, Vocabulary(list(cfg.model.lyric_vocab)))

    @classmethod
    def loaded_from(
        cls, path: Path, cfg: SongBloomConfig, model, vae, opts_device, opts_dtype, *, training_language: str | None
    ) -> SongBloom:
        """A bundle read from the checkpoint ``path``: its config names that file; it knows its training language."""
        cfg.pretrained_path = str(Path(path).resolve())
        bundle = cls._finish(cfg, model, vae, opts_device, opts_dtype)
        bundle.training_language = training_language
        return bundle

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize_lyrics(self, processed: str | None) -> list[int]:
        """Vocabulary ids of an already-processed lyric string (see ``songbloom.text`` for raw lyrics)."""
        return self.vocab.tokenize(processed).ids

    @torch.no_grad()
    def encode_prompt(self, wav: torch.Tensor, *, sample: bool = True) -> torch.Tensor:
        """(B, T) or (B, C, T) 48 kHz prompt audio -> (B, latent_dim, F) latents, mono-downmixed first."""
        if wav.dim() == 2:
            wav = wav[:, None]
        wav = wav.mean(dim=1, keepdim=True).float().to(self.device)
        return self.vae.encode(wav, sample=sample)

    def conditions(
        self, lyrics: list[str | None], prompt_wav: torch.Tensor | None = None, *, sample_prompt: bool = True
    ) -> ConditionTensors:
        latents = None if prompt_wav is None else self.encode_prompt(prompt_wav, sample=sample_prompt)
        ids = [None if text is None else self.tokenize_lyrics(text) for text in lyrics]
        return self.model.encode_conditions(ids, None if latents is None else latents.to(self._dtype()))

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.no_grad()
    def teacher_forced(
        self,
        x_sketch: torch.Tensor,
        x_latent: torch.Tensor,
        x_len: torch.Tensor,
        *,
        lyrics: list[str | None],
        prompt_wav: torch.Tensor | None = None,
        **forward_kwargs,
    ) -> ForwardOutput:
        """Run the teacher-forced forward on one batch (lyrics already processed into phoneme strings)."""
        cond = self.conditions(lyrics, prompt_wav)
        dev, dt = self.device, self._dtype()
        return self.model(x_sketch.to(dev), x_latent.to(dev, dt), x_len.to(dev), cond, **forward_kwargs)


def load_release(
    model_name: str,
    local_dir: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    local_only: bool = False,
) -> SongBloom:
    """A released model by name: from ``local_dir`` when its files are there, else the Hugging Face Hub."""
    return SongBloom.from_pretrained(model_name, local_dir=local_dir, device=device, dtype=dtype, local_only=local_only)
