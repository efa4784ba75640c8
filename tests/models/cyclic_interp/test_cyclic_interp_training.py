"""Super SloMo through the one training loop on real frames (../shared/data/video-frames, downscaled): a supervised
`adlr-hf train`, `adlr-hf evaluate --task frame-interpolation` on the real DAVIS triplets into the card's
model-index, and `adlr-hf publish` naming the regime; cycle + pseudo-supervision with a frozen teacher at TP=2 under
DeepSpeed and at DP=2 under Accelerate, each resumed exactly (losses, evaluations, weights); and the teacher kept out
of what the engines train, wrap, partition (DeepSpeed ZeRO-3) and checkpoint."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from dist_utils import run_ranks
from models.video_utils import SHARED_DATA, VIDEO_FRAMES, cli_train, train_flags, write_small_clips
from training.resume_utils import assert_same_run, run_then_resume

DAVIS = SHARED_DATA / "vfi-davis-dev"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VIDEO_FRAMES.is_dir() or not DAVIS.is_dir(),
                       reason=f"real frames not found at {SHARED_DATA} (../shared/data of the checkout is absent)"),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return write_small_clips(tmp_path_factory.mktemp("frames"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    from adlr_hf import CyclicInterpForFrameInterpolation, get_config

    folder = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(42)
    CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny")).save_pretrained(folder)
    return folder


def flags(data: Path, out: Path, steps: int = 4, **extra) -> list[str]:
    return train_flags("cyclic-interp-tiny", data, out, steps, crop_size=32, **extra)


def test_supervised_train_then_evaluate_on_davis_and_publish(clips, tmp_path):
    from adlr_hf.cli import main as cli

    run = tmp_path / "run"
    run_ranks(cli_train, flags(clips, run, steps=2, regime="supervised"), world_size=1)
    info = json.loads((run / "run_info.json").read_text())
    assert (info["task"], info["regime"], info["teacher"], info["perceptual"]) == ("video-interpolation",
                                                                                   "supervised", None, None)
    assert info["sample_offsets"] == [0, 1, 2] and info["train_windows"] == 10 and info["held_out_windows"] == 2
    assert info["eval_psnr"] > 0 and info["eval_frame_average_psnr"] > 0
    assert cli(["evaluate", str(run / "model"), "--task", "frame-interpolation", "--data", str(DAVIS),
                "--update-card", "--json", str(tmp_path / "eval.json")]) == 0
    values = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert values["num_frames"] == 5 and set(values["per_clip"]) == {"dive-in", "dolphins", "kart-turn",
                                                                     "pole-vault", "speed-skating"}
    assert 5 < values["psnr"] < 60 and 15 < values["frame_average_psnr"] < 40 and 0 < values["ssim"] <= 1
    assert cli(["publish", str(run), str(tmp_path / "pub")]) == 0
    card = (tmp_path / "pub" / "README.md").read_text()
    index = yaml.safe_load(card.split("---")[1])["model-index"][0]["results"][0]
    shown = {m["type"]: m["value"] for m in index["metrics"]}
    assert shown["psnr"] == pytest.approx(values["psnr"]) and "psnr_frame_average" in shown
    assert index["task"]["type"] == "video-to-video" and index["dataset"]["name"] == "vfi-davis-dev"
    assert "| training regime | supervised (true in-between frames) |" in card
    assert "off (no local VGG16 weights were given)" in card and "video-frame-interpolation" in card


def _deepspeed_tp2(rank, argv, teacher):
    """Run + exact resume at TP=2 with a teacher; every checkpoint holds the student's weights only."""
    from safetensors.torch import load_file

    from adlr_hf import CyclicInterpForFrameInterpolation, get_config

    run_then_resume(rank, [(argv, 2)])
    out = Path(argv[argv.index("--out") + 1])
    student = set(CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny")).state_dict())
    for checkpoint in (out / "checkpoints").glob("step_*"):
        saved = torch.load(checkpoint / f"mp_rank_{rank:02d}_model_states.pt", weights_only=False)
        assert set(saved["module"]) == student, checkpoint
    assert set(load_file(out / "model" / "model.safetensors")) == student
    assert set(load_file(teacher / "model.safetensors")) == student


def test_deepspeed_tp2_cycle_ps_resumes_exactly(clips, teacher, tmp_path):
    out = tmp_path / "ds_tp2"
    argv = flags(clips, out, regime="cycle-ps", teacher=teacher, sample_rate=0, engine="deepspeed", tp=2,
                 save_every=2, eval_every=2)
    run_ranks(_deepspeed_tp2, argv, teacher)
    assert_same_run(out, out.with_name("ds_tp2-resumed"))
    info = json.loads((out / "run_info.json").read_text())
    assert (info["tp"], info["engine"], info["regime"], info["teacher_weight"]) == (2, "deepspeed", "cycle-ps", 0.8)
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r["split"] == "eval"] == [2, 4]


def _capture(engine_class, box):
    setup = engine_class.setup

    def capturing(self, *args, **kwargs):
        box.append(self)
        return setup(self, *args, **kwargs)

    engine_class.setup = capturing


def _teacher_untouched(model, teacher_dir):
    from safetensors.torch import load_file

    saved = load_file(teacher_dir / "model.safetensors")
    teacher = model.teacher
    assert teacher is not None and not teacher.training
    assert all(torch.equal(v, saved[k]) and not v.requires_grad and v.grad is None
               for k, v in teacher.state_dict(keep_vars=True).items())
    own = {id(p) for p in model.parameters()}
    assert not own & {id(p) for p in teacher.parameters()}
    return {id(p) for p in teacher.parameters()}


def _dp2_engines(rank, accelerate_argv, zero3_argv, teacher_dir):
    """Accelerate (DDP over 2 ranks) with an exact resume, then DeepSpeed ZeRO-3; inside each engine the teacher is
    neither trained, wrapped nor partitioned."""
    from adlr_hf.training.engine_accelerate import AccelerateEngine
    from adlr_hf.training.engine_deepspeed import DeepSpeedEngine

    engines = []
    _capture(AccelerateEngine, engines)
    _capture(DeepSpeedEngine, engines)
    run_then_resume(rank, [(accelerate_argv, 2)])
    accelerate = engines[-1]
    teacher_ids = _teacher_untouched(accelerate.module, teacher_dir)
    assert type(accelerate.model).__name__ == "DistributedDataParallel"
    assert not teacher_ids & {id(p) for p in accelerate.model.parameters()}  # DDP syncs the student only
    assert not teacher_ids & {id(p) for g in accelerate.optimizer.param_groups for p in g["params"]}
    from adlr_hf.train import run
    from adlr_hf.training.args import build_parser

    run(build_parser().parse_args(zero3_argv))
    zero3 = engines[-1].engine
    module = zero3.module
    _teacher_untouched(module, teacher_dir)
    assert all(hasattr(p, "ds_id") for p in module.parameters())  # ZeRO-3 partitioned the student ...
    assert not any(hasattr(p, "ds_id") for p in module.teacher.parameters())  # ... and left the teacher whole
    assert all(p.numel() > 0 for p in module.teacher.parameters())


def test_accelerate_dp2_resumes_exactly_and_zero3_leaves_the_teacher_out(clips, teacher, tmp_path):
    from safetensors.torch import load_file

    acc, zero3 = tmp_path / "acc_dp2", tmp_path / "zero3"
    accelerate = flags(clips, acc, regime="cycle-ps", teacher=teacher, sample_rate=0, engine="accelerate",
                       save_every=2, eval_every=2)
    zero3_argv = flags(clips, zero3, steps=2, regime="cycle-ps", teacher=teacher, sample_rate=0,
                       engine="deepspeed", deepspeed_config=Path(__file__).resolve().parents[3] / "configs" /
                       "deepspeed" / "zero3.json")
    run_ranks(_dp2_engines, accelerate, zero3_argv, teacher)
    assert_same_run(acc, acc.with_name("acc_dp2-resumed"))
    info = json.loads((acc / "run_info.json").read_text())
    assert (info["dp"], info["engine"], info["regime"]) == (2, "accelerate", "cycle-ps")
    student = set(load_file(teacher / "model.safetensors"))
    assert set(load_file(acc / "checkpoints" / "step_00000004" / "model.safetensors")) == student
    assert set(load_file(zero3 / "model" / "model.safetensors")) == student
    assert json.loads((zero3 / "run_info.json").read_text())["zero_stage"] == 3
