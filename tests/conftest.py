import pytest
import torch
from torch import nn


def randomize_norm_layers(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                k = module.num_features
                module.running_mean.copy_(0.2 * torch.randn(k, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(k, generator=generator))
                module.weight.copy_(0.5 + torch.rand(k, generator=generator))
                module.bias.copy_(0.2 * torch.randn(k, generator=generator))
    return model


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
