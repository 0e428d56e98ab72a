"""Hostile inputs: a correct score or an error that names the input."""
import pytest
import torch

from gaia_openood import GAIAA, GAIAZ
from gaia_openood.models import cifar_resnet

DETECTORS = [GAIAZ, GAIAA]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return cifar_resnet(20).eval()


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_nan_and_inf_pixels_name_the_samples(net, detector_class):
    x = torch.randn(5, 3, 32, 32)
    x[1, 0, 3, 3] = float("nan")
    x[4, 2, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="sample\\(s\\) \\[1, 4\\] contain NaN or infinite"):
        detector_class(net).score(x)


@pytest.mark.parametrize("detector_class", DETECTORS)
@pytest.mark.parametrize(
    "x, error, message",
    [
        (torch.randn(3, 32, 32), ValueError, "expected images of shape \\(B, C, H, W\\).*unsqueeze"),
        (torch.randn(1, 1, 3, 32, 32), ValueError, "expected images of shape"),
        (torch.randn(0, 3, 32, 32), ValueError, "the batch is empty"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TypeError, "integer dtype torch.uint8.*x.float\\(\\) / 255"),
        ([[0.0]], TypeError, "expected a torch.Tensor"),
        (torch.randn(2, 1, 32, 32), ValueError, "(?s)forward pass failed on an input of shape \\(1, 1, 32, 32\\).*channel count"),
    ],
)
def test_malformed_batches(net, detector_class, x, error, message):
    with pytest.raises(error, match=message):
        detector_class(net).score(x)


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_a_batch_of_one_scores_like_the_same_sample_in_a_batch(net, detector_class):
    x = torch.randn(6, 3, 32, 32)
    torch.testing.assert_close(detector_class(net).score(x[2:3]), detector_class(net).score(x)[2:3], rtol=1e-5, atol=0)


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_other_float_dtypes_and_layouts_are_converted(net, detector_class):
    x = torch.randn(3, 3, 32, 32)
    expected = detector_class(net).score(x)
    torch.testing.assert_close(detector_class(net).score(x.double()), expected, rtol=1e-6, atol=0)
    strided = torch.randn(3, 3, 32, 64)[..., ::2]
    strided.copy_(x)
    torch.testing.assert_close(detector_class(net).score(strided), expected, rtol=1e-6, atol=0)
    needs_grad = x.clone().requires_grad_()
    torch.testing.assert_close(detector_class(net).score(needs_grad), expected, rtol=1e-6, atol=0)
    assert needs_grad.grad is None


def test_scores_follow_the_model_device(net):
    score = GAIAZ(net).score(torch.randn(2, 3, 32, 32))
    assert score.device == next(net.parameters()).device and score.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("detector_class", DETECTORS)
def test_inputs_on_another_device_are_moved_to_the_model(net, detector_class):
    x = torch.randn(2, 3, 32, 32)
    expected = detector_class(net).score(x)
    model = cifar_resnet(20).eval()
    model.load_state_dict(net.state_dict())
    got = detector_class(model.cuda()).score(x)  # CPU input, CUDA model
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=0)


def test_input_shape_change_reprobes(net):
    detector = GAIAA(net)
    assert detector.score(torch.randn(2, 3, 32, 32)).shape == (2,)
    assert detector.score(torch.randn(2, 3, 64, 64)).shape == (2,)
    assert len(detector._layers) == 2
