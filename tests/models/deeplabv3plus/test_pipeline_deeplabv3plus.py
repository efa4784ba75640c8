"""The `image-segmentation` pipeline on a published DeepLabV3+ folder and a real CamVid image: one mask per predicted
class, named from the config's `id2label`, at the image's own size, equal to the argmax of the model's logits resized
to it (computed here from the processor and the model)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers
from PIL import Image

from adlr_hf import get_config
from adlr_hf.models.deeplabv3plus import DeepLabV3PlusForSemanticSegmentation, DeepLabV3PlusImageProcessor

CAMVID = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "camvid"


@pytest.fixture
def camvid_image():
    if not (CAMVID / "val").is_dir():
        pytest.skip(f"CamVid subset not found at {CAMVID} (see shared/data/camvid/SOURCE.md)")
    return Image.open(sorted((CAMVID / "val").glob("*.png"))[0]).convert("RGB")


def test_image_segmentation_pipeline_on_a_camvid_image(camvid_image, tmp_path):
    torch.manual_seed(0)
    config = get_config("deeplabv3plus-tiny", image_size=64)
    model = DeepLabV3PlusForSemanticSegmentation(config).eval()
    processor = DeepLabV3PlusImageProcessor.for_config(config)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    pipe = transformers.pipeline("image-segmentation", model=str(tmp_path))
    results = pipe(camvid_image)

    width, height = camvid_image.size
    assert (width, height) == (480, 360)
    with torch.no_grad():
        logits = model(**processor(camvid_image, return_tensors="pt")).logits
    expected = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)[0].argmax(0)
    names = config.id2label
    assert [r["label"] for r in results] == [names[int(c)] for c in expected.unique()]
    covered = np.zeros((height, width), dtype=int)
    for result in results:
        mask = np.asarray(result["mask"]) > 0
        assert mask.shape == (height, width)
        class_id = next(i for i, name in names.items() if name == result["label"])
        np.testing.assert_array_equal(mask, (expected == class_id).numpy())
        covered += mask
    assert (covered == 1).all()  # the masks partition the image

    batched = pipe([camvid_image, camvid_image.resize((240, 180))], batch_size=2)
    assert [r["label"] for r in batched[0]] == [r["label"] for r in results]
    assert np.asarray(batched[1][0]["mask"]).shape == (180, 240)
