"""Tests for replication/nets.py: U2Net parameter counts and shapes (docs/official-settings.md §2, §4), small nets,
registry.

Large models are built on the meta device (no memory, no init, no compute) where only parameter
counts and output shapes are checked; real CPU forward passes use small inputs.
"""

from __future__ import annotations

import pytest
import torch

from replication.core.nets import MLP, RSU, NETS, SmallUNet, U2Net, build_net


def count_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# U2Net (docs/official-settings.md §2, §4).


@pytest.mark.parametrize(
    "channels, width_factor, expected",
    [(24, 2, 112_856_784), (16, 1, 28_259_552)],  # CIFAR-10/FFHQ-256 (M=8, C=3); MNIST (M=16, C=1)
)
def test_u2net_param_count(channels, width_factor, expected):
    with torch.device("meta"):
        net = U2Net(channels, channels, width_factor)
    assert count_params(net) == expected


def test_u2net_param_count_on_cpu_matches_meta():
    net = U2Net(16, 16, width_factor=1)
    assert count_params(net) == 28_259_552
    assert all(p.device.type == "cpu" for p in net.parameters())


def test_u2net_has_no_batchnorm_and_biased_convs():
    with torch.device("meta"):
        net = U2Net(16, 16, width_factor=1)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is not None for c in convs)


@pytest.mark.parametrize("size", [28, 32, 256])
def test_u2net_shape_meta(size):
    """Shape at the paper's resolutions with the paper's width (meta device: no compute)."""
    with torch.device("meta"):
        net = U2Net(24, 24, width_factor=2)
        y = torch.empty(1, 24, size, size)
        assert net(y).shape == (1, 24, size, size)


def test_u2net_forward_cpu_mnist():
    """Real forward + backward on MNIST-sized input (28 -> 14 -> 7 -> 4 -> 2), width factor 1."""
    torch.manual_seed(0)
    net = U2Net(16, 16, width_factor=1)
    y = torch.randn(2, 16, 28, 28)
    out = net(y)
    assert out.shape == y.shape
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("size", [(32, 32), (27, 31), (5, 3), (1, 1)])
def test_u2net_forward_cpu_odd_sizes(size):
    net = U2Net(3, 5, width_factor=1)
    with torch.no_grad():
        out = net(torch.randn(1, 3, *size))
    assert out.shape == (1, 5, *size)


@pytest.mark.parametrize("L", [2, 3, 4, 5, 6])
def test_rsu_shape(L):
    block = RSU(L, 3, 4, 6)
    assert block(torch.randn(2, 3, 13, 10)).shape == (2, 6, 13, 10)


# Small nets.


def _small_unet_params(c_in: int, c_out: int, w: int, noise_conditional: bool = False) -> int:
    """SmallUNet's parameter count in closed form, from its docstring's layout (GroupNorm: 2 per channel)."""
    h, e = w // 2, (2 * w if noise_conditional else 0)
    conv = lambda i, o, k=3: i * o * k * k + o  # noqa: E731
    res = lambda i, o: 2 * i + conv(i, o) + 2 * o + conv(o, o) + (conv(i, o, 1) if i != o else 0) + (e * o + o if e else 0)  # noqa: E731
    embed = (16 * e + e) + (e * e + e) if e else 0
    return (conv(c_in, h) + res(h, h) + res(h, w) + res(w, w) + res(w, 2 * w) + 2 * res(2 * w, 2 * w)
            + res(3 * w, w) + res(w, w) + res(w + h, h) + 2 * h + conv(h, c_out) + embed)


@pytest.mark.parametrize("c, width, noise_conditional", [(1, 32, False), (16, 32, False), (16, 32, True), (3, 8, False)])
def test_small_unet_param_count_is_the_closed_form(c, width, noise_conditional):
    net = SmallUNet(c, c, width=width, noise_conditional=noise_conditional)
    assert count_params(net) == _small_unet_params(c, c, width, noise_conditional)


@pytest.mark.parametrize("size", [(28, 28), (32, 32), (27, 29), (7, 5), (1, 1)])
def test_small_unet_shape(size):
    net = SmallUNet(4, 4)
    y = torch.randn(2, 4, *size)
    out = net(y)
    assert out.shape == y.shape
    out.sum().backward()


def test_mlp_is_two_silu_layers_and_a_linear_readout():
    torch.manual_seed(0)
    net = MLP(8, 6, hidden=32, depth=2)
    x = torch.randn(5, 8)
    (w1, b1), (w2, b2), (w3, b3) = [(m.weight, m.bias) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    silu = lambda z: z * torch.sigmoid(z)  # noqa: E731
    torch.testing.assert_close(net(x), silu(silu(x @ w1.T + b1) @ w2.T + b2) @ w3.T + b3)
    assert (w1.shape, w2.shape, w3.shape) == ((32, 8), (32, 32), (6, 32))


# Registry.


def test_build_net_dispatch():
    assert isinstance(build_net("small_unet", 2, 2, width=8), SmallUNet)
    assert isinstance(build_net("mlp", 4, 4, hidden=16), MLP)
    with torch.device("meta"):
        assert count_params(build_net("u2net", 24, 24, width_factor=2)) == 112_856_784


def test_build_net_unknown_name_lists_known():
    with pytest.raises(ValueError) as err:
        build_net("resnet", 1, 1)
    for name in NETS:
        assert name in str(err.value)
    assert set(NETS) == {"u2net", "small_unet", "mlp"}
