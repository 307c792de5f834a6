"""The frame rule that ties MuQ features to SongBloom's VAE latent frames.

Both run at 25 Hz, but they count frames differently:

* VAE: 48 kHz, hop 1920, no centre padding -> ``F = T_48k // 1920`` frames. Frame ``i`` covers
  ``[40 i, 40 i + 40)`` ms.
* MuQ: 24 kHz, centred mel STFT with hop 240 (the last mel frame is dropped), then two stride-2 convs
  -> ``ceil((T_24k // 240) / 4)`` frames. Frame ``i`` pools mel frames ``4i .. 4i+3``, centred at
  ``40 i .. 40 i + 30`` ms, so it describes the same 40 ms as VAE frame ``i``.

For any input rate ``sr`` (with the audio resampled the way torchaudio does, to ``ceil(T * new / sr)``
samples) the MuQ count is always ``F`` or ``F + 1``: the extra frame is a partial trailing frame that
the VAE does not have. The rule is therefore: **MuQ frame i is VAE frame i; keep the first F MuQ
frames and drop the rest**. Padding is never needed for whole-clip extraction; when a caller hands
fewer frames (for instance features computed elsewhere) the last frame is repeated, and the count of
padded frames is reported so callers can refuse it.
"""

from __future__ import annotations

import torch

VAE_SAMPLE_RATE = 48000
VAE_HOP = 1920
FRAME_RATE = 25  # VAE_SAMPLE_RATE / VAE_HOP
MUQ_SAMPLE_RATE = 24000
MUQ_SAMPLES_PER_FRAME = 960  # mel hop 240 x 4 (conv subsampling)
ALIGNMENT_RULE = "vae48k_hop1920_floor/muq_frame_i=vae_frame_i/trim_tail_v1"


def num_vae_frames(num_samples: int, sample_rate: int) -> int:
    """VAE latent frames for ``num_samples`` of audio at ``sample_rate``: ``T_48k // 1920``.

    ``T_48k`` is the length after resampling to 48 kHz (``ceil(T * 48000 / sr)``); ``ceil(x) // 1920``
    equals ``floor(x / 1920)``, so this is exactly ``T * 25 // sr`` in integer arithmetic.
    """
    if num_samples < 0 or sample_rate <= 0:
        raise ValueError(f"need num_samples >= 0 and sample_rate > 0, got {num_samples}, {sample_rate}")
    return (int(num_samples) * FRAME_RATE) // int(sample_rate)


def num_muq_frames(num_samples_24k: int) -> int:
    """Frames MuQ returns for ``num_samples_24k`` samples at 24 kHz (centred STFT, last frame dropped, /4)."""
    mel_frames = int(num_samples_24k) // 240
    return -(-mel_frames // 4)


def align_to_vae_frames(features: torch.Tensor, num_frames: int, *, time_dim: int = -2) -> tuple[torch.Tensor, int]:
    """Trim (or, rarely, pad by repeating the last frame) ``features`` to ``num_frames`` along ``time_dim``.

    Returns ``(aligned, num_padded)``. Trimming drops trailing frames only, because MuQ frame ``i`` and
    VAE frame ``i`` start at the same instant; padding is reported so that a caller can treat it as an error.
    """
    length = features.shape[time_dim]
    if length >= num_frames:
        return features.narrow(time_dim, 0, num_frames), 0
    if length == 0:
        raise ValueError(f"cannot align an empty feature sequence to {num_frames} frames")
    missing = num_frames - length
    last = features.narrow(time_dim, length - 1, 1)
    repeat = [1] * features.dim()
    repeat[time_dim] = missing
    return torch.cat([features, last.repeat(*repeat)], dim=time_dim), missing
