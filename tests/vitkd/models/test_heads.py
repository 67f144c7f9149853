"""DINO head and feature adaptor."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitkd.models import DINOHead, FeatureAdaptor


def test_dino_head_layout_and_shapes() -> None:
    head = DINOHead(32, out_dim=128, hidden_dim=64, bottleneck_dim=16)
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 64), (64, 64), (64, 16)]
    assert sum(isinstance(m, nn.GELU) for m in head.mlp) == 2
    assert head.last_layer.bias is None
    assert head(torch.randn(5, 32)).shape == (5, 128)
    assert head(torch.randn(2, 7, 32)).shape == (2, 7, 128)
    assert len([m for m in DINOHead(32, 8, nlayers=1).mlp if isinstance(m, nn.Linear)]) == 1
    with pytest.raises(ValueError, match="nlayers=0"):
        DINOHead(32, 8, nlayers=0)


def test_dino_head_equals_cosine_to_prototypes() -> None:
    head = DINOHead(32, out_dim=128, hidden_dim=64, bottleneck_dim=16)
    x = torch.randn(4, 32)
    direction = head.last_layer.parametrizations.weight.original1
    want = F.normalize(head.mlp(x), dim=-1) @ F.normalize(direction, dim=1).T
    torch.testing.assert_close(head(x), want)


def test_last_layer_magnitude_is_fixed_at_one() -> None:
    head = DINOHead(32, out_dim=128, hidden_dim=64, bottleneck_dim=16)
    magnitude = head.last_layer.parametrizations.weight.original0
    assert not magnitude.requires_grad and torch.equal(magnitude, torch.ones(128, 1))
    opt = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=1.0)
    head(torch.randn(8, 32)).logsumexp(-1).sum().backward()
    opt.step()
    assert torch.equal(magnitude, torch.ones(128, 1))
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(128))
    names = {n for n, p in head.named_parameters() if p.requires_grad}
    assert "last_layer.parametrizations.weight.original1" in names


def test_feature_adaptor() -> None:
    adaptor = FeatureAdaptor(32, 48)
    assert adaptor.hidden_dim == 48
    layers = list(adaptor.mlp)
    assert isinstance(layers[1], nn.GELU)
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (32, 48, 48)
    assert adaptor(torch.randn(2, 5, 32)).shape == (2, 5, 48)
    assert FeatureAdaptor(32, 48, hidden_dim=16).mlp[0].out_features == 16
