"""The landmark model's losses: the differentiable SSIM equals scikit-image's, the VGG19 perceptual loss taps
relu1_2 / relu2_2 / relu3_2 / relu4_2 with the reference's weights, and a VGG19 file loads (or is refused) by path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from adlr_hf.models.landmark_video import LandmarkVideoModel
from adlr_hf.models.landmark_video.losses_landmark_video import differentiable_ssim, reconstruction_loss
from adlr_hf.models.landmark_video.vgg19_features import check_vgg19_file, load_vgg19_features
from adlr_hf.registry import get_config


def test_ssim_equals_scikit_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 20, generator=g, dtype=torch.float64) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    expected = np.mean([np.mean([structural_similarity(x[n, c].numpy(), y[n, c].numpy(), data_range=2.0,
                                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                                 for c in range(3)]) for n in range(2)])
    assert float(differentiable_ssim(x, y)) == pytest.approx(expected, abs=1e-10)
    assert float(differentiable_ssim(x, x)) == pytest.approx(1.0, abs=1e-12)


def test_fallback_loss_is_l1_plus_one_minus_ssim_and_has_gradients():
    config = get_config("landmark-video-tiny")
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    loss = reconstruction_loss(x, y, config)
    expected = (x - y).abs().mean() + 1 - differentiable_ssim(x, y)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert x.grad.abs().sum() > 0


def vgg_features(config: str):
    """torchvision's VGG feature stack ("E": VGG19, "D": VGG16), randomly initialised (building the whole network
    would also initialise its 120 M classifier weights)."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs[config])


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    # a torchvision vgg19 state dict's layout (classifier entries are ignored by the loader)
    torch.save({f"features.{k}": v for k, v in vgg_features("E").state_dict().items()}, path)
    return path


def test_perceptual_loss_taps_the_four_relus_with_the_reference_weights(vgg19_file):
    features = load_vgg19_features(vgg19_file)
    assert len(features) == 23 and not any(p.requires_grad for p in features.parameters())
    full = vgg_features("E")  # all 37 layers of VGG19's features
    full.load_state_dict({k.removeprefix("features."): v for k, v in torch.load(vgg19_file).items()})
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    # independently: run torchvision's whole VGG19 layer by layer and pick relu1_2, relu2_2, relu3_2, relu4_2
    taps, a, b = [], x, y
    for index, layer in enumerate(full):
        a, b = layer(a), layer(b)
        if index in (3, 8, 13, 22):
            taps.append(F.mse_loss(a, b))
        if index == 22:
            break
    taps.append(F.mse_loss(x, y))
    expected = 5.0 * sum(w * t for w, t in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0), taps))
    config = get_config("landmark-video-tiny")
    assert config.vgg_lambda == 5.0 and config.vgg_reduced_weights
    torch.testing.assert_close(reconstruction_loss(x, y, config, features), expected, rtol=1e-5, atol=0)


def test_model_uses_the_attached_vgg19_features(vgg19_file):
    torch.manual_seed(0)
    model = LandmarkVideoModel(get_config("landmark-video-tiny")).eval()
    frames = torch.rand(1, 2, 3, 64, 64) * 2 - 1
    plain = model(pixel_values_videos=frames, labels=frames[:, 0]).loss
    model.set_perceptual_network(load_vgg19_features(vgg19_file))
    assert not any(k.startswith("_perceptual") for k in model.state_dict())  # never saved
    out = model(pixel_values_videos=frames, labels=frames[:, 0])
    expected = reconstruction_loss(out.reconstruction, frames[:, 0], model.config, model.perceptual_network)
    torch.testing.assert_close(out.loss, expected)
    assert not torch.isclose(out.loss, plain)


def test_a_file_that_is_not_vgg19_is_refused_by_path(tmp_path):
    path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in vgg_features("D").state_dict().items()}, path)
    with pytest.raises(ValueError, match="not a VGG19 state dict"):
        check_vgg19_file(path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        check_vgg19_file(tmp_path / "missing.pth")
