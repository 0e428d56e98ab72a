"""The scoped ``.cuda()`` redirection: active inside the block only, undone even on errors."""
import pytest
import torch
from torch import nn

from gaia_openood.runner.device import needs_cuda_message, openood_device, resolve_device

ORIGINAL_TENSOR_CUDA = torch.Tensor.cuda
ORIGINAL_MODULE_CUDA = nn.Module.cuda


def assert_untouched():
    assert torch.Tensor.cuda is ORIGINAL_TENSOR_CUDA and "cuda" not in torch.Tensor.__dict__
    assert nn.Module.cuda is ORIGINAL_MODULE_CUDA and nn.Module.__dict__["cuda"] is ORIGINAL_MODULE_CUDA


def test_cuda_calls_stay_on_cpu_inside_the_block_only():
    x, net = torch.ones(2), nn.Linear(2, 2)
    with openood_device("cpu") as device:
        assert device == torch.device("cpu")
        assert x.cuda() is x
        assert x.cuda(0, non_blocking=True) is x
        assert net.cuda() is net and net.weight.device.type == "cpu"
        assert nn.Parameter(torch.zeros(1)).cuda().device.type == "cpu"
    assert_untouched()


def test_restored_after_an_error():
    with pytest.raises(RuntimeError, match="boom"):
        with openood_device(torch.device("cpu")):
            assert torch.Tensor.cuda is not ORIGINAL_TENSOR_CUDA
            raise RuntimeError("boom")
    assert_untouched()


def test_nested_blocks_restore_in_order():
    with openood_device("cpu"):
        patched = torch.Tensor.cuda
        with openood_device("cpu"):
            pass
        assert torch.Tensor.cuda is patched
    assert_untouched()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_device_is_refused_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_nothing_is_patched():
    with openood_device("cuda:0"):
        assert_untouched()
        assert torch.ones(1).cuda().device == torch.device("cuda", 0)


def test_resolve_device():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")


def test_needs_cuda_hint():
    assert "needs a CUDA device" in needs_cuda_message(AssertionError("Torch not compiled with CUDA enabled"))
    assert needs_cuda_message(ValueError("shapes do not match")) is None
