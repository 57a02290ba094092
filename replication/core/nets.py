"""Networks nu_theta for MDAE/MEM: the paper's U2Net (docs/official-settings.md §4), a small U-Net and an MLP.

U2Net follows the official code (nnaisense/mems `archs/u2net.py`), itself derived from U^2-Net
(Qin et al. 2020) with ReLU -> SiLU, no BatchNorm, the sixth stage removed, the non-dilated RSU
variant everywhere and only the fused side output returned. With PyTorch default init and biased
convolutions its parameter count is 112,856,784 (width factor 2, 24 in/out channels: CIFAR-10,
FFHQ-256) and 28,259,552 (width factor 1, 16 in/out channels: MNIST), as in docs/official-settings.md §2. Channel
orders also follow the official code: every concatenation is cat(deeper, skip) and the fused side
maps are ordered dec1, dec2, dec3, dec4, enc5 (module names differ, so its checkpoints would need
a key mapping).

`SmallUNet` and `MLP` are not from the paper: they are CPU-sized stand-ins for quick runs
(Fashion-MNIST 28x28, toy 2-D data).

Shape convention: image nets map (N, C_in, H, W) -> (N, C_out, H, W); the MLP maps
(N, D_in) -> (N, D_out). The caller folds the M measurements of y, (N, M, C, H, W), into channels,
(N, M*C, H, W), measurement-major (docs/official-settings.md §4); the nets never see the measurement axis.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def _upsample_like(h: Tensor, ref: Tensor) -> Tensor:
    """Bilinear resize of h (N, C, *) to the spatial size of ref (align_corners=False)."""
    if h.shape[-2:] == ref.shape[-2:]:
        return h
    return F.interpolate(h, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def _pool(h: Tensor) -> Tensor:
    """2x2 max-pool, stride 2, ceil_mode (28 -> 14 -> 7 -> 4 -> 2)."""
    return F.max_pool2d(h, kernel_size=2, stride=2, ceil_mode=True)


# ------------------------------------------------------------------------------------------------
# U2Net (docs/official-settings.md §4).


class ConvSiLU(nn.Module):
    """CONV unit of U2Net: 3x3 conv (padding = dilation, with bias) followed by SiLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(self.conv(x))


class RSU(nn.Module):
    """Residual U-block RSU(L, in, mid, out), non-dilated variant (docs/official-settings.md §4).

    h0 = CONV(in -> out)(x); an inner U-Net of height L over h0 (levels 1..L-1 plain CONVs with a
    ceil-mode max-pool between levels 1..L-2, level L a CONV with dilation 2, decoder CONVs over
    cat(child, skip) with bilinear upsampling); output h0 + U-Net(h0).

    Shapes: (N, in, H, W) -> (N, out, H, W).
    """

    def __init__(self, L: int, in_channels: int, mid_channels: int, out_channels: int):
        super().__init__()
        if L < 2:
            raise ValueError(f"RSU height L must be >= 2, got {L}")
        self.L = L
        self.conv_in = ConvSiLU(in_channels, out_channels)
        # Level l = 1..L-1 at index l-1; level 1 connects to the out-channel h0.
        self.encoder = nn.ModuleList(
            [ConvSiLU(out_channels if l == 1 else mid_channels, mid_channels) for l in range(1, L)]
        )
        self.bottom = ConvSiLU(mid_channels, mid_channels, dilation=2)
        self.decoder = nn.ModuleList(
            [ConvSiLU(2 * mid_channels, out_channels if l == 1 else mid_channels)
             for l in range(1, L)]
        )

    def forward(self, x: Tensor) -> Tensor:
        h0 = self.conv_in(x)

        # Encode levels 1..L-1; pool before recursing except below level L-1.
        skips = []
        h = h0
        for l, conv in enumerate(self.encoder, start=1):
            h = conv(h)
            skips.append(h)
            if l < self.L - 1:
                h = _pool(h)

        # Level L: dilated CONV at the resolution of level L-1.
        h = self.bottom(h)

        # Decode levels L-1..1, upsampling each output to the size of the level above.
        for l in range(self.L - 1, 0, -1):
            h = self.decoder[l - 1](torch.cat([h, skips[l - 1]], dim=1))
            if l > 1:
                h = _upsample_like(h, skips[l - 2])

        # Residual connection.
        return h0 + h


class U2Net(nn.Module):
    """U2Net of the official code (docs/official-settings.md §4): 5 encoder, 4 decoder RSU stages, fused side outputs.

    Stages (L, in, mid, out) with width factor f: enc1 (6, C_in, 64f, 64f),
    enc2 (5, 64f, 128f, 128f), enc3 (4, 128f, 128f, 256f), enc4 (3, 256f, 256f, 512f),
    enc5 (3, 512f, 256f, 512f),
    dec4 (3, 1024f, 128f, 256f), dec3 (3, 512f, 128f, 128f), dec2 (5, 256f, 128f, 64f),
    dec1 (6, 128f, 64f, 64f). Side outputs (3x3 conv -> C_out, upsampled to the input size) from
    dec1, dec2, dec3, dec4, enc5 are fused by a 1x1 conv; only the fused map is returned, with no
    activation.

    Args:
        in_channels: C_in = M*C (measurements folded into channels).
        out_channels: C_out = M*C.
        width_factor: f; 2 for CIFAR-10/FFHQ-256 (112,856,784 params at 24 channels), 1 for MNIST
            (28,259,552 params at 16 channels).

    Shapes: (N, C_in, H, W) -> (N, C_out, H, W) for any H, W >= 1 (ceil-mode pooling).
    """

    def __init__(self, in_channels: int, out_channels: int, width_factor: int = 1):
        super().__init__()
        f = width_factor
        self.enc1 = RSU(6, in_channels, 64 * f, 64 * f)
        self.enc2 = RSU(5, 64 * f, 128 * f, 128 * f)
        self.enc3 = RSU(4, 128 * f, 128 * f, 256 * f)
        self.enc4 = RSU(3, 256 * f, 256 * f, 512 * f)
        self.enc5 = RSU(3, 512 * f, 256 * f, 512 * f)
        self.dec4 = RSU(3, 1024 * f, 128 * f, 256 * f)
        self.dec3 = RSU(3, 512 * f, 128 * f, 128 * f)
        self.dec2 = RSU(5, 256 * f, 128 * f, 64 * f)
        self.dec1 = RSU(6, 128 * f, 64 * f, 64 * f)
        # Side convs for dec1, dec2, dec3, dec4, enc5 (the official order after its maps.reverse()).
        side_channels = (64 * f, 64 * f, 128 * f, 256 * f, 512 * f)
        self.side = nn.ModuleList([nn.Conv2d(c, out_channels, 3, padding=1) for c in side_channels])
        self.fuse = nn.Conv2d(5 * out_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        # Encoder: 2x2 ceil-mode max-pool between stages.
        e1 = self.enc1(x)
        e2 = self.enc2(_pool(e1))
        e3 = self.enc3(_pool(e2))
        e4 = self.enc4(_pool(e3))
        e5 = self.enc5(_pool(e4))

        # Decoder: stage k sees cat(upsampled deeper output, encoder-k output).
        d4 = self.dec4(torch.cat([_upsample_like(e5, e4), e4], dim=1))
        d3 = self.dec3(torch.cat([_upsample_like(d4, e3), e3], dim=1))
        d2 = self.dec2(torch.cat([_upsample_like(d3, e2), e2], dim=1))
        d1 = self.dec1(torch.cat([_upsample_like(d2, e1), e1], dim=1))

        # Side outputs at input resolution, fused by a 1x1 conv.
        sides = [_upsample_like(conv(h), x) for conv, h in zip(self.side, (d1, d2, d3, d4, e5))]
        return self.fuse(torch.cat(sides, dim=1))


# ------------------------------------------------------------------------------------------------
# Small CPU-sized nets (not from the paper).


class _ResBlock(nn.Module):
    """GroupNorm -> SiLU -> 3x3 conv, twice, with a residual (1x1 projection if widths differ).

    With `emb_dim` > 0 a per-channel shift computed from a conditioning embedding is added after the first conv
    (the noise-level input of noise-conditional networks, as in Ho et al. 2020 and Song et al. 2021)."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int = 0):
        super().__init__()
        self.norm1 = nn.GroupNorm(math.gcd(8, in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(math.gcd(8, out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.skip = nn.Conv2d(in_channels, out_channels, 1)
        if emb_dim:
            self.emb = nn.Linear(emb_dim, out_channels)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


def _run(blocks: nn.ModuleList, h: Tensor, emb: Tensor | None) -> Tensor:
    for block in blocks:
        h = block(h, emb)
    return h


class SmallUNet(nn.Module):
    """Three-resolution U-Net with GroupNorm residual blocks and SiLU, for CPU runs (not from the paper).

    The work is done at low resolution, where it is cheap: (w = width)
      full res  3x3 conv C_in -> w/2, one ResBlock(w/2)            (skip s1)
      1/2 res   ResBlock(w/2 -> w), ResBlock(w)                    (skip s2)
      1/4 res   ResBlock(w -> 2w), ResBlock(2w), ResBlock(2w)
      up to 1/2 ResBlock(2w + w -> w), ResBlock(w)
      up to 1   ResBlock(w + w/2 -> w/2); GroupNorm -> SiLU -> 3x3 conv w/2 -> C_out.
    2x2 ceil-mode max-pooling down, bilinear resizing to the skip's size up. At width 32 on 28x28 with
    16 channels: 317,552 parameters (tests/test_nets.py: the closed form) and about 45 MFLOP per forward (batch 1).

    `noise_conditional=True` (the CLMC denoiser, docs/method.md §6.2): forward(x, log_s) also takes the log noise
    level of each input; 8 sine/cosine features of log_s pass an MLP (16 -> 2w -> 2w) whose output every ResBlock
    maps to a per-channel shift. 28,128 parameters more at width 32 with 16 channels.

    Shapes: (N, C_in, H, W) [, (N,)] -> (N, C_out, H, W) for any H, W >= 1 (odd sizes included).
    """

    N_FREQ = 8  # sine/cosine features of log s at frequencies 1..8

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, noise_conditional: bool = False):
        super().__init__()
        w, h = width, max(width // 2, 1)
        e = 2 * w if noise_conditional else 0
        self.conv_in = nn.Conv2d(in_channels, h, 3, padding=1)
        self.level1 = _ResBlock(h, h, e)
        self.level2 = nn.ModuleList([_ResBlock(h, w, e), _ResBlock(w, w, e)])
        self.level3 = nn.ModuleList([_ResBlock(w, 2 * w, e), _ResBlock(2 * w, 2 * w, e), _ResBlock(2 * w, 2 * w, e)])
        self.up2 = nn.ModuleList([_ResBlock(3 * w, w, e), _ResBlock(w, w, e)])
        self.up1 = _ResBlock(w + h, h, e)
        self.norm_out = nn.GroupNorm(math.gcd(8, h), h)
        self.conv_out = nn.Conv2d(h, out_channels, 3, padding=1)
        self.noise_conditional = noise_conditional
        if noise_conditional:
            self.embed = nn.Sequential(nn.Linear(2 * self.N_FREQ, e), nn.SiLU(), nn.Linear(e, e), nn.SiLU())

    def forward(self, x: Tensor, log_s: Tensor | None = None) -> Tensor:
        emb = None
        if self.noise_conditional:
            if log_s is None:
                raise ValueError("a noise-conditional SmallUNet needs the noise level: forward(x, log_s)")
            f = log_s.to(x.dtype)[:, None] * torch.arange(1, self.N_FREQ + 1, device=x.device, dtype=x.dtype)
            emb = self.embed(torch.cat([f.sin(), f.cos()], dim=1))
        s1 = self.level1(self.conv_in(x), emb)  # [N, w/2, H, W]
        s2 = _run(self.level2, _pool(s1), emb)  # [N, w, H/2, W/2]
        z = _run(self.level3, _pool(s2), emb)  # [N, 2w, H/4, W/4]
        z = _run(self.up2, torch.cat([_upsample_like(z, s2), s2], dim=1), emb)
        z = self.up1(torch.cat([_upsample_like(z, s1), s1], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(z)))


class MLP(nn.Module):
    """Fully connected net with `depth` hidden SiLU layers of width `hidden`, for toy 2-D data.

    Shapes: (N, in_features) -> (N, out_features).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 256, depth: int = 3):
        super().__init__()
        if depth < 1:
            raise ValueError(f"MLP depth must be >= 1, got {depth}")
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# ------------------------------------------------------------------------------------------------
# Registry.

NETS: dict[str, Callable[..., nn.Module]] = {"u2net": U2Net, "small_unet": SmallUNet, "mlp": MLP}


def build_net(name: str, in_channels: int, out_channels: int, **kwargs) -> nn.Module:
    """Build a registered net by name.

    Args:
        name: one of "u2net", "small_unet", "mlp".
        in_channels: input channels (M*C) for image nets, input features (M*D) for the MLP.
        out_channels: output channels / features.
        **kwargs: passed to the constructor (width_factor, width, or hidden/depth).

    Returns:
        The module, with PyTorch default init.
    """
    if name not in NETS:
        raise ValueError(f"unknown net {name!r}; known nets: {', '.join(sorted(NETS))}")
    return NETS[name](in_channels, out_channels, **kwargs)
