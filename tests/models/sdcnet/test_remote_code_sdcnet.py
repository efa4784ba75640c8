"""A saved SDC-Net folder carries its code (modeling, loss, warp, SDC op, shared base, OpenCV flow source, video
processor) and loads with trust_remote_code=True where adlr_hf cannot be imported: the same predictions from raw
frames (OpenCV DIS flows) and from given flows; a flow source that needs adlr_hf says so."""

import pytest
import torch
from transformers import AutoModel

from adlr_hf import SDCNetVideoProcessor, get_config
from remote_code import run_without_adlr_hf

pytestmark = pytest.mark.slow


def test_remote_code_loads_and_predicts_where_adlr_hf_is_not_importable(tmp_path):
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(3, 3, 8, 8, generator=g) * 255  # smooth frames, so DIS finds structure
    frames = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)
    past, target = frames[None, :2], frames[2:]
    flows = torch.randn(1, 1, 2, 64, 64, generator=g)
    expected = {"past": past, "target": target, "flows": flows}
    configs = {"full": {}, "noflow": {"flow_source": "none"},
               "raft": {"flow_source": "raft-small", "flow_weights": "raft_small.pth"}}
    for name, overrides in configs.items():
        torch.manual_seed(0)
        model = AutoModel.from_config(get_config("sdcnet-tiny", **overrides)).eval()
        model.save_pretrained(tmp_path / name)
        SDCNetVideoProcessor.for_config(model.config).save_pretrained(tmp_path / name)
        with torch.no_grad():
            expected[name] = [model(past, labels=target, input_flows=f) for f in
                              ((None, flows) if name == "full" else (None,) if name == "noflow" else ())]
        expected[name] = [(o.motion, o.predicted_frame, o.loss) for o in expected[name]]
    assert (tmp_path / "full" / "opencv.py").is_file() and not (tmp_path / "full" / "sdc.py").is_symlink()
    torch.save(expected, tmp_path / "expected.pt")
    body = f"""
        import torch
        from transformers import AutoModel, AutoVideoProcessor
        expected = torch.load({str(tmp_path / 'expected.pt')!r})
        for name, given in (("full", (None, expected["flows"])), ("noflow", (None,))):
            model = AutoModel.from_pretrained({str(tmp_path)!r} + "/" + name, trust_remote_code=True).eval()
            for flows, (motion, predicted, loss) in zip(given, expected[name]):
                with torch.no_grad():
                    out = model(expected["past"], labels=expected["target"], input_flows=flows)
                # Same code and weights; another process may pick another convolution kernel (float32 summation
                # order): the motion agrees to 1e-5 px, which moves warped 0..255 pixels by at most ~1e-3.
                torch.testing.assert_close(out.motion, motion, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(out.predicted_frame, predicted, rtol=1e-5, atol=5e-3)
                torch.testing.assert_close(out.loss, loss, rtol=1e-5, atol=1e-6)
            print(name, "ok", type(model).__name__, type(model).__module__)
        processor = AutoVideoProcessor.from_pretrained({str(tmp_path / 'full')!r}, trust_remote_code=True)
        pixels = processor([[expected["past"][0, 0].permute(1, 2, 0).numpy().astype("uint8")] * 2],
                           return_tensors="pt")["pixel_values_videos"]
        print("processor", type(processor).__name__, tuple(pixels.shape))
        model = AutoModel.from_pretrained({str(tmp_path / 'raft')!r}, trust_remote_code=True)
        try:
            model(expected["past"])
        except ImportError as err:
            print("raft:", err)
    """
    stdout = run_without_adlr_hf(body, tmp_path / "hf_home")
    assert "full ok SDCNetForFramePrediction transformers_modules" in stdout
    assert "noflow ok SDCNetForFramePrediction" in stdout
    assert "processor SDCNetVideoProcessor (1, 2, 3, 64, 64)" in stdout
    assert "raft: flow_source 'raft-small' needs adlr_hf" in stdout and "pass input_flows" in stdout
