"""The MLP builder and the IR payment head."""

import pytest
import torch
from torch import nn

from mechanisms.networks import ACTIVATIONS, MLP, PaymentHead, Tanh, check_dtype, mlp


def test_mlp_layers_follow_the_requested_widths_and_activation() -> None:
    net = mlp(6, 4, hidden=(16, 8), activation="relu")
    linears = [layer for layer in net if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(6, 16), (16, 8), (8, 4)]
    assert [type(layer) for layer in net if not isinstance(layer, nn.Linear)] == [nn.ReLU, nn.ReLU]
    assert isinstance(net[-1], nn.Linear)  # linear output
    assert net(torch.rand(5, 6)).shape == (5, 4)


def test_mlp_without_hidden_layers_is_one_affine_map() -> None:
    net = mlp(3, 2, hidden=())
    x, y = torch.rand(4, 3), torch.rand(4, 3)
    # affine: f(x) + f(y) = f(x + y) + f(0)
    torch.testing.assert_close(net(x) + net(y), net(x + y) + net(torch.zeros(1, 3)))


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 4e-7), (torch.float64, 1e-15)])
def test_fast_tanh_agrees_with_torch_tanh_to_float_precision(dtype: torch.dtype, atol: float) -> None:
    x = torch.cat([torch.linspace(-20, 20, 4001, dtype=dtype), torch.randn(10000, dtype=dtype) * 3])
    x = torch.cat([x, torch.tensor([0.0, 1e-30, -1e-8, 88.0, -88.0, 1e4, -1e4], dtype=dtype)])
    fast_x, ref_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    fast, ref = Tanh()(fast_x), torch.tanh(ref_x)
    torch.testing.assert_close(fast, ref, atol=atol, rtol=0)
    assert float(fast.detach().abs().max()) <= 1.0
    fast.sum().backward()  # the derivative 1 - y^2
    ref.sum().backward()
    torch.testing.assert_close(fast_x.grad, ref_x.grad, atol=2 * atol, rtol=0)


def test_fast_tanh_has_first_and_second_derivatives() -> None:
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Tanh(), (x,))
    assert torch.autograd.gradgradcheck(Tanh(), (x,))


def test_tanh_networks_use_the_fast_tanh_with_nn_tanh_weights() -> None:
    net = mlp(4, 3, hidden=(8, 8))
    assert [type(layer) for layer in net if not isinstance(layer, nn.Linear)] == [Tanh, Tanh]
    reference = nn.Sequential(*[nn.Tanh() if isinstance(layer, Tanh) else layer for layer in net])
    assert net.state_dict().keys() == reference.state_dict().keys()
    x = torch.rand(32, 4)
    torch.testing.assert_close(net(x), reference(x), atol=1e-6, rtol=0)


def test_unknown_activation_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid activations: " + ", ".join(ACTIVATIONS)):
        mlp(2, 2, activation="swish2")


@pytest.mark.parametrize("hidden", [(0,), (4, -1), (2.5,)])
def test_mlp_rejects_bad_widths(hidden: tuple) -> None:
    with pytest.raises(ValueError, match="positive integers"):
        mlp(2, 2, hidden=hidden)


def test_payment_is_a_bid_dependent_fraction_of_the_allocated_bid_value() -> None:
    head = PaymentHead(3, 2, MLP((8,)))
    bids = torch.rand(64, 3, 2)
    allocation = torch.rand(64, 3, 2)
    value = (bids * allocation).sum(-1)
    payment = head(bids, allocation)
    assert payment.shape == (64, 3)
    assert bool((payment >= 0).all()) and bool((payment <= value).all())  # IR by construction
    # The fraction depends on the bids only: scaling the allocation scales the payment.
    torch.testing.assert_close(head(bids, 0.5 * allocation), 0.5 * payment)
    fraction = payment / value
    assert bool((fraction > 0).all()) and bool((fraction < 1).all())
    assert fraction.std(0).min() > 0  # it does depend on the bids


def test_check_dtype_names_the_fix() -> None:
    with pytest.raises(ValueError, match=r"mechanism.to\(torch.float64\)"):
        check_dtype(torch.rand(2, 2, dtype=torch.float64), mlp(2, 2))
