"""Model files of the train stage: build the scheme of a ModelSpec, save it with its config key, load it back."""

from __future__ import annotations

import torch
from torch import nn

from ..core.nets import build_net
from ..core.schemes import MDAE, MUVB, PARAMETRIZATIONS, SCHEMES, _Scheme
from ..core.vdvae import vae_resnets
from ..data.storage import load_checked, save_checked
from ..errors import NotImplementedYet, UsageError
from .experiments import ModelSpec

_WIDTH_ARG = {"u2net": "width_factor", "small_unet": "width", "mlp": "hidden"}


def build_model(spec: ModelSpec, data_shape: tuple[int, ...]) -> _Scheme:
    """The scheme of an experiments.ModelSpec for data of shape (C, H, W) or (d,); in/out channels = M * C."""
    if spec.scheme not in SCHEMES:
        raise NotImplementedYet(f"scheme {spec.scheme!r} is listed in the registry but not implemented yet; "
                                f"implemented: {sorted(SCHEMES)}")
    if spec.scheme == "muvb":
        return _build_muvb(spec, data_shape)
    if spec.scheme == "mdae" and spec.parametrization not in PARAMETRIZATIONS:
        raise UsageError(f"unknown model.parametrization {spec.parametrization!r}; known: {', '.join(PARAMETRIZATIONS)}")
    levels = spec.parametrization == "ybar-levels"
    if levels and spec.net != "small_unet":
        raise UsageError(f"model.parametrization=ybar-levels needs a noise-conditional net; only small_unet has one "
                         f"(got model.net={spec.net!r}): set --set model.net=small_unet")
    channels = data_shape[0] if spec.parametrization in ("ybar", "ybar-levels") else spec.M * data_shape[0]
    net = build_net(spec.net, channels, channels, **{_WIDTH_ARG[spec.net]: spec.width},
                    **({"noise_conditional": True} if levels else {}))
    if spec.scheme != "mdae":
        return SCHEMES[spec.scheme](net, spec.sigma, spec.M, data_std=spec.data_std)
    if levels:
        return PARAMETRIZATIONS["ybar-levels"](net, spec.sigma, spec.M, sigmoid=spec.sigmoid, data_std=spec.data_std)
    return MDAE(net, spec.sigma, spec.M, sigmoid=spec.sigmoid, data_std=spec.data_std, parametrization=spec.parametrization)


def _build_muvb(spec: ModelSpec, data_shape: tuple[int, ...]) -> MUVB:
    """MUVB (docs/method.md §2.4): the VDVAE-style ResNets for 28x28 images, or two MLPs for vector data (toy)."""
    channels = spec.M * data_shape[0]
    if spec.net == "vdvae_resnet":
        if len(data_shape) != 3:
            raise UsageError(f"model.net=vdvae_resnet needs image data, got shape {data_shape}: use model.net=mlp")
        encoder, decoder = vae_resnets(channels, spec.zdim, width=spec.width, image_size=data_shape[-1])
    elif spec.net == "mlp":
        if len(data_shape) != 1:
            raise UsageError(f"a MUVB with model.net=mlp needs vector data, got shape {data_shape}: use model.net=vdvae_resnet")
        encoder, decoder = build_net("mlp", channels, 2 * spec.zdim, hidden=spec.width), build_net("mlp", spec.zdim, channels, hidden=spec.width)
    else:
        raise UsageError(f"model.scheme=muvb needs model.net=vdvae_resnet (images) or mlp (vectors), got {spec.net!r}")
    return MUVB(encoder, decoder, spec.sigma, spec.M, beta=spec.beta, data_std=spec.data_std)


def parameter_counts(spec: ModelSpec, data_shape: tuple[int, ...]) -> dict[str, int]:
    """{"total": n} and, for MUVB, {"encoder": n, "decoder": n}: counted on the meta device (no memory, no init)."""
    with torch.device("meta"):
        scheme = build_model(spec, data_shape)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    parts = {"encoder": count(scheme.net.encoder), "decoder": count(scheme.net.decoder)} if spec.scheme == "muvb" else {}
    return {"total": count(scheme), **parts}


def save_model(path, scheme: _Scheme, spec_dict: dict, key: str, ema: nn.Module | None = None, meta: dict | None = None) -> None:
    """The trained model file: weights (and EMA weights), the model spec and the train-stage key."""
    save_checked({"state_dict": scheme.state_dict(), "ema_state_dict": ema.state_dict() if ema is not None else None,
                  "spec": spec_dict, "key": key, "meta": meta or {}}, path)


def load_model(path, data_shape: tuple[int, ...], use_ema: bool = False, expect_key: str | None = None,
               spec: ModelSpec | None = None) -> _Scheme:
    """Rebuild and load a model written by save_model; refuse one trained under another config.

    `spec` (a ModelSpec) builds the scheme with the caller's (sigma, M) instead of the trained ones; this is
    how a ybar model trained at sigma_eff serves every (sigma, M) with sigma/sqrt(M) = sigma_eff.
    """
    blob = load_checked(path)
    if expect_key is not None and blob["key"] != expect_key:
        raise UsageError(f"{path} was trained under another configuration (key {blob['key'][:12]} != "
                         f"{expect_key[:12]}): retrain it (--force train) or point to the matching run folder")
    scheme = build_model(spec if spec is not None else ModelSpec(**blob["spec"]), data_shape)
    weights = blob["ema_state_dict"] if use_ema and blob["ema_state_dict"] is not None else blob["state_dict"]
    scheme.load_state_dict(weights)
    return scheme.eval()
