"""Where each part runs, with Apple's MPS backend as the special case.

MPS supports float32 well and bfloat16/float16 poorly for this model, so everything on ``mps`` runs in
float32. Some ops have no MPS kernel: PyTorch then either raises or, with ``PYTORCH_ENABLE_MPS_FALLBACK=1``,
runs that one op on the CPU. The variable is read when torch is first imported, so ``infer.py`` and
``train.py`` set it before importing torch when asked for ``mps`` (:func:`set_mps_fallback_env_from_argv`),
and a process that started without it gets a notice that says how to restart. MuQ's spectrogram uses a
complex-valued STFT that MPS does not support, so sketch tokens are always computed on the CPU there; the
VAE runs on MPS when a probe decode works and on the CPU otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from songbloom.utils.mps_env import FALLBACK_ENV, set_mps_fallback_env_from_argv

__all__ = ["FALLBACK_ENV", "set_mps_fallback_env_from_argv"]

logger = logging.getLogger(__name__)

MUQ_ON_MPS_NOTICE = (
    "MuQ's mel spectrogram uses a complex-valued STFT that MPS does not support: sketch tokens are computed on "
    "the CPU (the VAE still uses MPS)"
)


class DeviceUnavailableError(RuntimeError):
    """The requested accelerator is not usable in this process; the message says what to use instead."""


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def mps_fallback_enabled(env: dict[str, str] | os._Environ | None = None) -> bool:
    env = os.environ if env is None else env
    return str(env.get(FALLBACK_ENV, "")).strip() not in ("", "0")


def ensure_mps_fallback(env: dict[str, str] | os._Environ | None = None) -> str:
    """Turn on the per-op CPU fallback for child processes and say whether this one has it; returns the notice."""
    env = os.environ if env is None else env
    if mps_fallback_enabled(env):
        notice = f"MPS: {FALLBACK_ENV}=1, so ops without an MPS kernel run on the CPU (slower, but they run)"
        logger.info("%s", notice)
        return notice
    env[FALLBACK_ENV] = "1"  # worker processes started from here import torch with it
    notice = (
        f"MPS: {FALLBACK_ENV} was not set when torch was imported, so an op without an MPS kernel raises "
        f"NotImplementedError in this process (worker processes get the fallback). Restart with "
        f"`{FALLBACK_ENV}=1 python ...` to run such ops on the CPU instead"
    )
    logger.warning("%s", notice)
    return notice


# ------------------------------------------------------------------------------------------------ inference
@dataclass(frozen=True)
class InferenceDevices:
    """Generator device and dtype, the VAE's device, and what was changed on the way (for the log)."""

    device: torch.device
    dtype: torch.dtype
    vae_device: torch.device
    notes: list[str] = field(default_factory=list)


def _default_vae_probe(device: torch.device) -> None:
    """Encode and decode a few frames with a tiny VAE of the release's layer types on ``device``."""
    from songbloom.models.vae import OobleckVAE, VAEConfig

    vae = OobleckVAE(VAEConfig.tiny()).to(device).eval()
    with torch.inference_mode():
        latent = vae.encode(torch.zeros(1, 2, 1920 * 2, device=device), sample=False)
        vae.decode(latent)


def vae_device_for(
    device: torch.device, probe: Callable[[torch.device], None] | None = None
) -> tuple[torch.device, str | None]:
    """The VAE's device: ``device`` itself, except on MPS when a probe decode hits an op MPS lacks (then CPU)."""
    if device.type != "mps":
        return device, None
    try:
        (probe or _default_vae_probe)(device)
    except (NotImplementedError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return torch.device("cpu"), f"MPS lacks an op the VAE needs ({first[:200]}): the VAE runs on the CPU"
    return device, None


def resolve_inference_devices(
    name: str | None,
    dtype: torch.dtype = torch.float32,
    *,
    vae_probe: Callable[[torch.device], None] | None = None,
) -> InferenceDevices:
    """``--device`` -> devices and dtype. Default: CUDA when available, else CPU (MPS only when asked for).

    Raises:
        DeviceUnavailableError: CUDA or MPS requested but not available.
    """
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    notes: list[str] = []
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"--device {name}: CUDA is not available here (use --device cpu)")
    if device.type != "mps":
        return InferenceDevices(device, dtype, device, notes)
    if not mps_available():
        raise DeviceUnavailableError(
            f"--device {name}: MPS is not available here (it needs Apple silicon, macOS 12.3+ and a PyTorch build "
            "with MPS); use --device cpu"
        )
    if dtype != torch.float32:
        notes.append(f"MPS runs in float32 only: using float32 instead of {str(dtype).removeprefix('torch.')}")
        logger.warning("%s", notes[-1])
        dtype = torch.float32
    notes.append(ensure_mps_fallback())  # logs itself
    vae_device, why = vae_device_for(device, vae_probe)
    if why:
        notes.append(why)
        logger.warning("%s", why)
    return InferenceDevices(device, dtype, vae_device, notes)


# ---------------------------------------------------------------------------------- training / preprocessing
def prepare_training_accelerator(trainer_cfg: dict) -> list[str]:
    """Adjust Lightning trainer settings for MPS in place (float32, per-op fallback); returns the notices.

    Raises:
        DeviceUnavailableError: ``accelerator=mps`` without MPS.
    """
    if str(trainer_cfg.get("accelerator", "")).lower() != "mps":
        return []
    if not mps_available():
        raise DeviceUnavailableError("trainer.accelerator=mps: MPS is not available here; use trainer=cpu")
    notes = []
    precision = str(trainer_cfg.get("precision", "32-true"))
    if precision not in ("32", "32-true"):
        notes.append(f"MPS trains in float32 only: trainer.precision={precision} -> 32-true")
        trainer_cfg["precision"] = "32-true"
    if notes:
        logger.warning("%s", notes[0])
    notes.append(ensure_mps_fallback())  # logs itself
    return notes


def preprocessing_devices(name: str) -> tuple[str, str, list[str]]:
    """``--device`` of preprocessing -> (VAE device, MuQ/sketch device, notices)."""
    if torch.device(name).type != "mps":
        return name, name, []
    if not mps_available():
        raise DeviceUnavailableError(f"--device {name}: MPS is not available here; use --device cpu")
    notes = [ensure_mps_fallback(), MUQ_ON_MPS_NOTICE]
    logger.warning("%s", MUQ_ON_MPS_NOTICE)
    return name, "cpu", notes
