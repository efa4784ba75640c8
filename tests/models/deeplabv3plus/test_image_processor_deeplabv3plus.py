"""The DeepLabV3+ image processor: resize (bilinear) + ImageNet mean / std as the reference's evaluation transform,
nearest-neighbour label maps, `post_process_semantic_segmentation` with target sizes; saved so that plain
transformers loads it."""

import json

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2 import functional as TF
from transformers import AutoImageProcessor, SegformerImageProcessor
from transformers.modeling_outputs import SemanticSegmenterOutput

from adlr_hf import get_config
from adlr_hf.models.deeplabv3plus import DeepLabV3PlusImageProcessor

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def test_pixels_are_resized_and_normalised_with_imagenet_statistics():
    processor = DeepLabV3PlusImageProcessor.for_config(get_config("deeplabv3plus-tiny"))
    assert processor.size == {"height": 32, "width": 32}
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    pixels = processor(Image.fromarray(image), return_tensors="pt")["pixel_values"]
    as_tensor = torch.from_numpy(image).permute(2, 0, 1)
    resized = TF.resize(as_tensor, [32, 32], interpolation=TF.InterpolationMode.BILINEAR, antialias=True).float()
    expected = (resized / 255 - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    assert pixels.shape == (1, 3, 32, 32)
    torch.testing.assert_close(pixels[0], expected, rtol=1e-5, atol=1e-5)


def test_label_maps_are_resized_with_nearest_neighbours_and_keep_their_values():
    processor = DeepLabV3PlusImageProcessor(size={"height": 24, "width": 20})
    image = Image.fromarray(np.zeros((48, 40, 3), dtype=np.uint8))
    labels = np.full((48, 40), 255, dtype=np.uint8)
    labels[:24, :20], labels[24:, 20:] = 3, 7
    out = processor(image, segmentation_maps=Image.fromarray(labels), return_tensors="pt")
    assert out["labels"].shape == (1, 24, 20)
    assert set(out["labels"].unique().tolist()) == {3, 7, 255}
    assert (out["labels"][0, :12, :10] == 3).all() and (out["labels"][0, 12:, 10:] == 7).all()


def test_post_processing_resizes_logits_to_each_target_size_then_takes_the_argmax():
    processor = DeepLabV3PlusImageProcessor()
    logits = torch.randn(2, 5, 16, 16, generator=torch.Generator().manual_seed(0))
    maps = processor.post_process_semantic_segmentation(SemanticSegmenterOutput(logits=logits),
                                                        target_sizes=[(30, 20), (16, 40)])
    for i, size in enumerate([(30, 20), (16, 40)]):
        expected = F.interpolate(logits[i:i + 1], size=size, mode="bilinear", align_corners=False)[0].argmax(0)
        assert maps[i].shape == size and torch.equal(maps[i], expected)


def test_saved_processor_loads_as_plain_segformer_processor(tmp_path):
    DeepLabV3PlusImageProcessor.for_config(get_config("deeplabv3plus-tiny")).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "SegformerImageProcessor" and saved["size"] == {"height": 32, "width": 32}
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, SegformerImageProcessor)
    assert list(loaded.image_mean) == MEAN and list(loaded.image_std) == STD and not loaded.do_reduce_labels
