"""VGG16 features[:22] from a local weights file (the perceptual network of NVIDIA/unsupervised-video-interpolation,
arXiv 1906.05928): the layers up to conv4_3 before its ReLU, torchvision's full state dict or the features alone,
frozen, and the clear errors for a missing, unreadable or non-VGG16 file. Nothing is downloaded."""

import pytest
import torch
from torch import nn

from adlr_hf.layers.vgg_features import check_vgg16_file, load_vgg16_features


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """torchvision's VGG16 features, random: as a full-model state dict (with a stand-in classifier entry) and as
    the features alone."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["D"])[:22]  # only what features[:22] reads, to keep the file small
    folder = tmp_path_factory.mktemp("vgg")
    full = {f"features.{k}": v for k, v in features.state_dict().items()}
    torch.save({**full, "classifier.0.bias": torch.zeros(4)}, folder / "vgg16.pth")
    torch.save(features.state_dict(), folder / "features.pth")
    torch.save(full, folder / "legacy.pth", _use_new_zipfile_serialization=False)  # as torchvision's own file
    return folder, features


def test_features_end_at_conv4_3_before_its_relu_with_the_files_weights(weights):
    folder, features = weights
    for name in ("vgg16.pth", "features.pth", "legacy.pth"):
        loaded = load_vgg16_features(folder / name)
        assert len(loaded) == 22 and isinstance(loaded[-1], nn.Conv2d) and loaded[-1].out_channels == 512
        assert sum(isinstance(m, nn.MaxPool2d) for m in loaded) == 3 and not loaded.training
        assert not any(p.requires_grad for p in loaded.parameters())
        x = torch.rand(1, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), features.eval()(x))
            assert loaded(x).min() < 0  # no ReLU after conv4_3


def test_bad_files_fail_clearly(weights, tmp_path):
    folder, features = weights
    with pytest.raises(FileNotFoundError, match="do not exist; pass a local torchvision VGG16 state dict"):
        check_vgg16_file(tmp_path / "nope.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable PyTorch weights file"):
        check_vgg16_file(tmp_path / "empty.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds a list, not a VGG16 state dict"):
        check_vgg16_file(tmp_path / "list.pth")
    state = features.state_dict()
    torch.save({k: v for k, v in state.items() if k != "21.weight"}, tmp_path / "short.pth")
    with pytest.raises(ValueError, match="missing \\['21.weight'\\]"):
        load_vgg16_features(tmp_path / "short.pth")
    torch.save({**state, "0.weight": torch.zeros(64, 1, 3, 3)}, tmp_path / "gray.pth")
    with pytest.raises(ValueError, match="wrong shapes \\['0.weight'\\]"):
        check_vgg16_file(tmp_path / "gray.pth")
