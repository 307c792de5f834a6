"""Layers of the Stable-Audio "Oobleck" autoencoder: weight-normed convolutions, SnakeBeta, residual units.

Module and parameter names mirror the released VAE checkpoint (``layers.<i>`` Sequentials, ``weight_g`` /
``weight_v`` / ``bias`` on every convolution, ``alpha`` / ``beta`` on every activation), so that checkpoint
loads strictly with no key remapping. The weight norm is written out here instead of using
``torch.nn.utils.weight_norm`` (deprecated) or its parametrization (different key names).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

RESIDUAL_DILATIONS = (1, 3, 9)
RESIDUAL_KERNEL = 7
SNAKE_EPS = 1e-9


class _WeightNormConv(nn.Module):
    """Shared weight-norm logic: weight = g * v / ||v||, the norm taken over every axis except axis 0.

    Axis 0 is the output channel of ``Conv1d`` weights but the INPUT channel of ``ConvTranspose1d`` weights
    (shape (C_in, C_out, k)); the release normalised both along axis 0, so both store ``weight_g`` with shape
    (weight.shape[0], 1, 1). An optional cache ("folding") reuses the computed weight while ``g`` and ``v`` are
    unchanged, which saves the norm computation on every call at inference time.
    """

    def __init__(self, weight_shape: tuple[int, int, int], out_channels: int, fan_in: int, bias: bool) -> None:
        super().__init__()
        # Registration order bias, weight_g, weight_v matches the release state-dict order.
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, dtype=torch.float32))
        else:
            self.register_parameter("bias", None)
        # float32 explicitly: a low-precision default dtype (e.g. a bf16 init context) must not reach the VAE.
        self.weight_g = nn.Parameter(torch.empty(weight_shape[0], 1, 1, dtype=torch.float32))
        self.weight_v = nn.Parameter(torch.empty(weight_shape, dtype=torch.float32))
        self.fold_weight = False
        self._folded: tuple[tuple, torch.Tensor] | None = None
        self._reset_parameters(fan_in)

    def _reset_parameters(self, fan_in: int) -> None:
        # Same distribution as the default Conv1d / ConvTranspose1d init, then g = ||v|| so weight == v at start.
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            self.weight_g.copy_(self._norm_except_axis0(self.weight_v))

    @staticmethod
    def _norm_except_axis0(v: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(v, dim=(1, 2), keepdim=True)

    def _compute_weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / self._norm_except_axis0(self.weight_v))

    def effective_weight(self) -> torch.Tensor:
        """The convolution weight g * v / ||v|| (cached when folding is on, grad is off and g, v are unchanged)."""
        # With grad enabled the weight must be part of the graph (and an inference-mode cache could not be
        # saved for backward), so the cache is only used under no_grad / inference_mode.
        if not self.fold_weight or torch.is_grad_enabled():
            return self._compute_weight()
        g, v = self.weight_g, self.weight_v
        # _version changes on every in-place update (optimizer step, load_state_dict, copy_), so a stale cache
        # can never be used.
        key = (g._version, v._version, g.data_ptr(), v.data_ptr(), g.device, g.dtype)
        if self._folded is None or self._folded[0] != key:
            with torch.no_grad():
                self._folded = (key, self._compute_weight())
        return self._folded[1]


class WNConv1d(_WeightNormConv):
    """Weight-normed ``Conv1d`` with parameters ``weight_g`` (C_out, 1, 1), ``weight_v``, optional ``bias``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            (out_channels, in_channels, kernel_size), out_channels, fan_in=in_channels * kernel_size, bias=bias
        )
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.effective_weight(), self.bias, self.stride, self.padding, self.dilation)


class WNConvTranspose1d(_WeightNormConv):
    """Weight-normed ``ConvTranspose1d``; ``weight_g`` is (C_in, 1, 1) because axis 0 is the input channel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        # PyTorch's default init for transposed convs takes fan_in from weight axis 1 (C_out) times the kernel.
        super().__init__(
            (in_channels, out_channels, kernel_size), out_channels, fan_in=out_channels * kernel_size, bias=True
        )
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.effective_weight(), self.bias, self.stride, self.padding)


class SnakeBeta(nn.Module):
    """x + sin^2(exp(alpha) x) / (exp(beta) + 1e-9), per channel; alpha and beta are stored as logarithms."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Zero logs = unit frequency and magnitude, the release's initial value.
        self.alpha = nn.Parameter(torch.zeros(channels, dtype=torch.float32))
        self.beta = nn.Parameter(torch.zeros(channels, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.exp()[None, :, None]
        inv_beta = (1.0 / (self.beta.exp() + SNAKE_EPS))[None, :, None]
        wave = torch.sin(x * alpha)
        # One fused multiply-add over the waveform instead of a multiply and an add (the full-rate layers are
        # bound by these element-wise passes on CPU).
        return torch.addcmul(x, wave * wave, inv_beta)


def make_activation(channels: int, use_snake: bool) -> nn.Module:
    """SnakeBeta for the release (``use_snake``); ELU, which has no parameters, otherwise."""
    return SnakeBeta(channels) if use_snake else nn.ELU()


class ResidualUnit(nn.Module):
    """x + conv1x1(act(dilated conv7(act(x)))); 'same' padding keeps the length."""

    def __init__(self, channels: int, dilation: int, use_snake: bool) -> None:
        super().__init__()
        padding = dilation * (RESIDUAL_KERNEL - 1) // 2
        self.layers = nn.Sequential(
            make_activation(channels, use_snake),
            WNConv1d(channels, channels, RESIDUAL_KERNEL, dilation=dilation, padding=padding),
            make_activation(channels, use_snake),
            WNConv1d(channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def _residual_stack(channels: int, use_snake: bool) -> list[nn.Module]:
    return [ResidualUnit(channels, d, use_snake) for d in RESIDUAL_DILATIONS]


class EncoderBlock(nn.Module):
    """Three residual units, activation, then a strided conv (kernel 2s, padding ceil(s/2)) that downsamples by s."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *_residual_stack(in_channels, use_snake),
            make_activation(in_channels, use_snake),
            WNConv1d(in_channels, out_channels, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    """Activation, a transposed conv (kernel 2s, padding ceil(s/2)) that upsamples by s, three residual units."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            make_activation(in_channels, use_snake),
            WNConvTranspose1d(in_channels, out_channels, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
            *_residual_stack(out_channels, use_snake),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckEncoder(nn.Module):
    """Waveform (B, in_channels, T) -> (B, latent_dim, T // prod(strides)).

    Widths run channels * [1, *c_mults]: an opening conv to ``channels``, one EncoderBlock per stride, then
    activation and a k=3 conv to ``latent_dim`` (for the VAE bottleneck: mean and scale stacked).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        c_mults: tuple[int, ...],
        strides: tuple[int, ...],
        latent_dim: int,
        use_snake: bool,
    ) -> None:
        super().__init__()
        widths = [channels * m for m in (1, *c_mults)]
        layers: list[nn.Module] = [WNConv1d(in_channels, widths[0], kernel_size=7, padding=3)]
        for i, stride in enumerate(strides):
            layers.append(EncoderBlock(widths[i], widths[i + 1], stride, use_snake))
        layers += [make_activation(widths[-1], use_snake), WNConv1d(widths[-1], latent_dim, kernel_size=3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckDecoder(nn.Module):
    """Latent (B, latent_dim, F) -> waveform (B, out_channels, F * prod(strides)) for even strides.

    Mirror of the encoder; the closing conv has NO bias (as released) and tanh is applied only with
    ``final_tanh`` (false for the release).
    """

    def __init__(
        self,
        out_channels: int,
        channels: int,
        c_mults: tuple[int, ...],
        strides: tuple[int, ...],
        latent_dim: int,
        use_snake: bool,
        final_tanh: bool,
    ) -> None:
        super().__init__()
        widths = [channels * m for m in (1, *c_mults)]
        layers: list[nn.Module] = [WNConv1d(latent_dim, widths[-1], kernel_size=7, padding=3)]
        for i in range(len(strides), 0, -1):
            layers.append(DecoderBlock(widths[i], widths[i - 1], strides[i - 1], use_snake))
        layers += [
            make_activation(widths[0], use_snake),
            WNConv1d(widths[0], out_channels, kernel_size=7, padding=3, bias=False),
            nn.Tanh() if final_tanh else nn.Identity(),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
