"""The MUVB networks: VDVAE-style bottleneck ResNets for the encoder and decoder (docs/official-settings.md §7).

The official MUVB config builds both halves of its VAE from one block-spec string (a format taken from VDVAE,
Child 2021). Written here from that description, not copied:

  "RxN:W"  N residual blocks of width W at resolution R x R
  "RdK"    average-pool by K (ceil mode) in the encoder; nearest-neighbour upsampling by K in the decoder,
           which reads the list backwards (so "7d1.75" takes 4x4 to 7x7)

A block is the "deep bottleneck": x + c4(a(c3(a(c2(a(c1(a(x)))))))) with a = SiLU, c1 a 1x1 conv W -> W/4, c2 and
c3 3x3 convs W/4 -> W/4 (1x1 at resolution <= 2), c4 a 1x1 conv W/4 -> W. When the width grows the block's input
is zero-padded with channels; when it shrinks, a 1x1 projection comes first. A 1x1 conv brings the input to the
first width, and SiLU then a 1x1 conv brings the last width to the output. Every conv has a bias; weights are
orthogonal with gain 1.414, biases zero.

At the paper's widths (base width 128: 128, 256, 512, 1024, 1024, 1024) with M = 4 one-channel measurements and
zdim = 2048, the encoder has 10,703,296 parameters and the decoder 9,291,972 (docs/official-settings.md §2).
`width` scales every width by width/128 (the narrow CPU variant, docs/deviations.md §4.11).

Shapes: encoder (N, M*C, 28, 28) -> (N, 2*zdim, 1, 1) (mean and log-variance of z, chunked along channels);
decoder (N, zdim, 1, 1) -> (N, M*C, 28, 28).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor

GAIN = 1.414  # orthogonal init gain of the official config [C]
PAPER_WIDTH = 128


def block_specs(width: int = PAPER_WIDTH, image_size: int = 28) -> tuple[str, str]:
    """(encoder spec, decoder spec) at base width `width` for 28x28 images (the official strings at width 128)."""
    if image_size != 28:
        raise ValueError(f"the MUVB ResNets are specified for 28x28 images (MNIST, Fashion-MNIST), got {image_size}: "
                         f"use a 28x28 dataset or model.net=mlp for vector data")
    w = [width, 2 * width, 4 * width, 8 * width, 8 * width, 8 * width]
    enc = f"28x2:{w[0]},28d2,14x2:{w[1]},14d2,7x2:{w[2]},7d2,4x2:{w[3]},4d2,2x2:{w[4]},2d2,1x1:{w[5]}"
    return enc, enc.replace("7d2", "7d1.75")


def parse_specs(spec: str, reverse: bool) -> list[tuple[int, float | None, int | None]]:
    """The spec string as a list of (resolution, rescale factor or None, block width or None), in network order."""
    out: list[tuple[int, float | None, int | None]] = []
    for part in (spec.split(",")[::-1] if reverse else spec.split(",")):
        if "x" in part:
            head, width = part.split(":")
            res, count = head.split("x")
            out += [(int(res), None, int(width))] * int(count)
        elif "d" in part:
            res, rate = part.split("d")
            out.append((int(res), float(rate), None))
        else:
            raise ValueError(f"cannot read block spec {part!r} (expected 'RxN:W' or 'RdK')")
    return out


class BottleneckBlock(nn.Module):
    """The deep bottleneck residual block (see the module docstring), with its width change in front."""

    def __init__(self, prev_width: int, width: int, use_3x3: bool):
        super().__init__()
        mid = max(width // 4, 1)
        self.pad_to = width if prev_width < width else None
        self.proj = nn.Conv2d(prev_width, width, 1) if prev_width > width else None
        k = 3 if use_3x3 else 1
        self.c1 = nn.Conv2d(width, mid, 1)
        self.c2 = nn.Conv2d(mid, mid, k, padding=k // 2)
        self.c3 = nn.Conv2d(mid, mid, k, padding=k // 2)
        self.c4 = nn.Conv2d(mid, width, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.pad_to is not None:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad_to - x.shape[1]))  # zero channels appended
        elif self.proj is not None:
            x = self.proj(x)
        h = self.c1(F.silu(x))
        h = self.c2(F.silu(h))
        h = self.c3(F.silu(h))
        return x + self.c4(F.silu(h))


class Rescale(nn.Module):
    """Average-pool by `rate` (ceil mode) or, upsampling, nearest-neighbour interpolation by `rate`."""

    def __init__(self, rate: float, upsample: bool):
        super().__init__()
        self.rate, self.upsample = rate, upsample

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample:
            return F.interpolate(x, scale_factor=self.rate, mode="nearest")
        return F.avg_pool2d(x, kernel_size=int(self.rate), stride=int(self.rate), ceil_mode=True)


class BottleneckResNet(nn.Module):
    """A VDVAE-style ResNet built from a block-spec string (module docstring); `reverse` for the decoder."""

    def __init__(self, spec: str, in_channels: int, out_channels: int, reverse: bool = False):
        super().__init__()
        layers = parse_specs(spec, reverse)
        widths = [w for _, _, w in layers if w is not None]
        self.conv_in = nn.Conv2d(in_channels, widths[0], 1)
        blocks: list[nn.Module] = []
        prev = widths[0]
        for res, rate, width in layers:
            if width is None:
                blocks.append(Rescale(rate, upsample=reverse))
            else:
                blocks.append(BottleneckBlock(prev, width, use_3x3=res > 2))
                prev = width
        self.blocks = nn.Sequential(*blocks)
        self.conv_out = nn.Conv2d(prev, out_channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.orthogonal_(m.weight, gain=GAIN)
                nn.init.zeros_(m.bias)
        # channels-last weights: the narrow nets' step takes about half the time on CPU (same arithmetic, another
        # memory order); load_state_dict keeps this layout
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(F.silu(self.blocks(self.conv_in(x))))


def vae_resnets(channels: int, zdim: int, width: int = PAPER_WIDTH, image_size: int = 28) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) of the MUVB VAE: M*C channels -> 2*zdim at 1x1, zdim at 1x1 -> M*C channels."""
    enc, dec = block_specs(width, image_size)
    return BottleneckResNet(enc, channels, 2 * zdim), BottleneckResNet(dec, zdim, channels, reverse=True)
