"""`adlr-hf convert reldn` on checkpoints written in ContrastiveLosses4VRD's layout ({"model": state dict, ...} with
RelDN / S_Head / O_Head / Prd_RCNN module names)."""

import torch
import transformers
from models.convert_utils import assert_bad_checkpoints_fail

import adlr_hf  # noqa: F401 - registers the family with the Auto classes
from adlr_hf import registry
from adlr_hf.cli import main as cli
from adlr_hf.models.reldn import ReldnForRelationshipDetection
from adlr_hf.models.reldn.convert_reldn import HEAD_KEYS, convert_reldn

INPUTS = dict(boxes=torch.tensor([[[0.0, 0, 10, 10], [5, 5, 20, 20], [2, 3, 8, 30]]]),
              box_labels=torch.tensor([[1, 2, 3]]), image_sizes=torch.tensor([[40, 40]]))


def reference_layout(model, visual_in=None):
    """The model's relationship weights under the reference's names, plus detector weights the converter skips."""
    ours_to_reference = {v: k for k, v in HEAD_KEYS.items()}
    state = {}
    for key, value in model.state_dict().items():
        module, _, param = key.rpartition(".")
        if module in ours_to_reference:
            state[f"{ours_to_reference[module]}.{param}"] = value.clone()
    if visual_in is not None:  # a VGG16 checkpoint: box heads read 512·7·7 conv5 features
        for head in ("S_Head", "O_Head", "Prd_RCNN.Box_Head"):
            state[f"{head}.fc1.weight"] = torch.randn(state[f"{head}.fc1.weight"].shape[0], visual_in)
    state["Conv_Body.res1.conv1.weight"] = torch.randn(4, 3, 3, 3)  # Detectron's detector: not converted
    state["Box_Outs.cls_score.weight"] = torch.randn(9, 32)
    return {"step": 7559, "train_size": 4000, "batch_size": 8, "model": state}


def source_model(name="reldn-tiny-visual"):
    torch.manual_seed(0)
    model = ReldnForRelationshipDetection(registry.get_config(name)).eval()
    with torch.no_grad():  # a trained-looking frequency bias rather than the zero initialisation
        model.head.semantic.weight.normal_()
    return model


def test_converted_checkpoint_gives_the_source_model_outputs(tmp_path):
    model = source_model()
    src, detector = tmp_path / "model_step7559.pth", tmp_path / "detector.pth"
    torch.save(reference_layout(model), src)
    torch.save(model.detector.model.state_dict(), detector)
    folder = convert_reldn(src, tmp_path / "out", variant="reldn-tiny-visual", detector=str(detector))
    loaded = transformers.AutoModel.from_pretrained(folder).eval()
    assert isinstance(loaded, ReldnForRelationshipDetection) and loaded.config.use_subject_object
    pixels = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(**INPUTS, pixel_values=pixels, return_contributions=True)
        got = loaded(**INPUTS, pixel_values=pixels, return_contributions=True)
    for name in expected.contributions:
        torch.testing.assert_close(got.contributions[name], expected.contributions[name], rtol=0, atol=0)
    # the command line, with its options
    assert cli(["convert", "reldn", str(src), str(tmp_path / "cli"), "--variant", "reldn-tiny-visual",
                "--detector", str(detector)]) == 0
    assert (tmp_path / "cli" / "config.json").is_file()


def test_a_vgg_checkpoint_converts_its_spatial_and_semantic_modules_with_drop_visual(tmp_path):
    model = source_model()
    src = tmp_path / "vgg.pth"
    torch.save(reference_layout(model, visual_in=512 * 7 * 7), src)
    try:
        convert_reldn(src, tmp_path / "refused", variant="reldn-tiny-visual")
        raise AssertionError("a box head of 25088 inputs was accepted for a 392-input detector")
    except ValueError as err:
        assert "25088 inputs" in str(err) and "--drop-visual" in str(err)
    assert not (tmp_path / "refused").exists()
    folder = convert_reldn(src, tmp_path / "out", variant="reldn-tiny-visual", drop_visual=True)
    loaded = transformers.AutoModel.from_pretrained(folder).eval()
    assert loaded.config.enabled_modules == ("spatial", "semantic") and loaded.detector is None
    with torch.no_grad():
        pixels = torch.rand(1, 3, 40, 40)
        expected = model(**INPUTS, pixel_values=pixels, return_contributions=True).contributions
        got = loaded(**INPUTS).predicate_logits  # no image needed
    torch.testing.assert_close(got, expected["spatial"] + expected["semantic"])


def test_bad_checkpoints_fail_with_one_error_and_write_nothing(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(reference_layout(source_model()), good)
    cases = {
        "detector_only": ({"model": {"Conv_Body.res1.conv1.weight": torch.zeros(1)}}, "no RelDN head"),
        "not_square": ({"model": {"RelDN.freq_bias.rel_baseline.weight": torch.zeros(10, 6)}}, r"\(#objects\)²"),
        "no_scores": ({"model": {"RelDN.prd_cls_feats.0.weight": torch.zeros(2, 2)}}, "no predicate scores"),
    }
    assert_bad_checkpoints_fail(lambda src, out: convert_reldn(src, out, variant="reldn-tiny-visual"), "reldn",
                                good, cases, tmp_path)
