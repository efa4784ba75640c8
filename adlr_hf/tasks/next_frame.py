"""`next-frame`: video frame prediction trained on clips (frame folders or video files), evaluated with PSNR / SSIM
(training) and PSNR / SSIM / IE beside the copy-last-frame baseline (`adlr-hf evaluate --task next-frame`), as
SDC-Net's `main.py` evaluates (arXiv 1811.00684; NVIDIA/semantic-segmentation branch `sdcnet`).

A model fits when its `AutoModel` class reads `pixel_values_videos` (B, T, 3, H, W) RGB frames in [0, 255] (T =
`config.sequence_length` past frames) and `labels` (B, 3, H, W), returns `loss` and `predicted_frame`, offers
`rollout(frames, num_future_frames)`, and its family has a processor (frames -> padded `pixel_values_videos`).
Optional: `config.size_divisor` (H and W must be multiples), `config.flow_source` / `config.flow_weights` (built
once before training so a missing dependency fails first) and `config.fit_input_statistics(windows)` (called on a
sample of training windows when training from scratch, e.g. to measure flow statistics).

Data: every `--data` path is a clip folder, a video, or a folder of them (`adlr_hf.data.frames`). Windows of
T + 1 frames start every `--frame-stride` frames; the last `--eval-fraction` of each clip's frames (at least one
window) is held out, so no held-out frame is ever trained on. Training windows get a random crop, optional time
reversal (the reference's augmentation) and flip, drawn from (seed, epoch, window): resumes replay them exactly.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.distributed as dist

from ..family import Option
from .base import EvalMetric, Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int

DEFAULT_CROP = 256  # the paper trains on 256×256 crops
CALIBRATION_WINDOWS = 8  # training windows `fit_input_statistics` sees


def parse_crop(value) -> tuple[int, int] | None:
    """`--crop-size`: "256" (square), "256x448" (H x W) or "0" (full frames) -> (h, w) or None."""
    text = str(value).lower().strip()
    try:
        parts = [int(p) for p in text.split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1 and parts[0] == 0:
        return None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise ValueError(f"--crop-size {value!r} must be N (square), HxW, or 0 for full frames")
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


FRAME_STRIDE = Option("--frame-stride", dict(type=int, default=1, help="next-frame: windows start every N frames "
                                                                       "(default 1)"))
NEXT_FRAME_OPTIONS = (
    Option("--crop-size", dict(default=str(DEFAULT_CROP), help="next-frame: training crop, N or HxW (a multiple of "
                                                               f"the model's size divisor); 0 = full frames "
                                                               f"(default {DEFAULT_CROP})")),
    Option("--window", dict(type=int, default=None, help="next-frame: frames per sample, the past frames plus the "
                                                         "target (default: the model's sequence_length + 1)")),
    FRAME_STRIDE,
    Option("--reverse", dict(action=argparse.BooleanOptionalAction, default=True,
                             help="next-frame: play training windows backwards with probability 1/2 (default on, "
                                  "as the reference)")),
    Option("--flip", dict(action="store_true", help="next-frame: flip training windows horizontally with "
                                                   "probability 1/2")),
)


def frame_metrics(predicted: torch.Tensor, target: torch.Tensor, last: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame PSNR / SSIM / IE (float64, (B,)) of predictions and of the copy-last-frame baseline. Frames are
    (B, 3, H, W) in [0, 255]; predictions are clamped and rounded to 8 bits first, as a saved frame would be (the
    reference casts to uint8 without clamping). IE is the mean over pixels of the RGB error norm (its `main.py`)."""
    from ..metrics.ie.ie import interpolation_error
    from ..metrics.psnr.psnr import psnr
    from ..metrics.ssim.ssim import ssim

    predicted = predicted.detach().float().clamp(0, 255).round()
    target, last = target.detach().float(), last.detach().float()
    return {"psnr": psnr(predicted, target), "ssim": ssim(predicted, target),
            "ie": interpolation_error(predicted, target, color="mean_l2"),
            "copy_last_psnr": psnr(last, target), "copy_last_ssim": ssim(last, target),
            "copy_last_ie": interpolation_error(last, target, color="mean_l2")}


class NextFrameMetric(EvalMetric):
    """Training-time evaluation: mean PSNR / SSIM of the predicted frames and the copy-last-frame PSNR, over every
    data-parallel rank (the metric modules' torch functions)."""

    keys = ("psnr", "ssim", "copy_last_psnr")

    def __init__(self, dp_group=None):
        self.dp_group = dp_group
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.keys) + 1, dtype=torch.float64)

    def add_batch(self, outputs, batch) -> None:
        values = frame_metrics(outputs.predicted_frame, batch["labels"], batch["pixel_values_videos"][:, -1])
        for i, key in enumerate(self.keys):
            self.sums[i] += values[key].sum().cpu()
        self.sums[-1] += values["psnr"].numel()

    def compute(self) -> dict[str, float]:
        sums = self.sums.clone()
        if self.dp_group is not None and dist.is_initialized() and dist.get_world_size(self.dp_group) > 1:
            dist.all_reduce(sums, group=self.dp_group)
        if sums[-1] == 0:
            return {}
        return {key: float(sums[i] / sums[-1]) for i, key in enumerate(self.keys)}


class EpochFrameWindows(torch.utils.data.Dataset):
    """Decoded windows of a frame dataset, with `set_epoch` (the training loop calls it each epoch) forwarding to
    the augmentation transform."""

    def __init__(self, windows, transform):
        from ..data.frames import with_frame_transform

        self.transform = transform
        self.windows = with_frame_transform(windows, transform)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index):
        return self.windows[int(index)]

    def set_epoch(self, epoch: int) -> None:
        self.transform.set_epoch(epoch)


def next_frame_collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Decoded windows -> {"pixel_values_videos": uint8 (B, T, 3, h, w), "labels": float32 (B, 3, h, w)}."""
    from ..data.frames import frames_collate

    frames = frames_collate(examples)["frames"]
    return {"pixel_values_videos": frames[:, :-1], "labels": frames[:, -1].float()}


def check_flow_source(config, size: tuple[int, int] | None = None) -> None:
    """Build the config's flow source (and run it once on frames of `size`) so a missing dependency, weights file or
    a size it cannot take fails before any output."""
    name = getattr(config, "flow_source", None)
    if name in (None, "none"):
        return
    if name == "precomputed":
        raise ValueError("next-frame computes flows from the frames it reads; flow_source 'precomputed' serves "
                         "inference with input_flows=...; train with --set flow_source=opencv-dis (or raft-*)")
    from ..layers.flow import build_flow_source

    options = {"weights": getattr(config, "flow_weights", None)} if name.startswith("raft-") else {}
    source = build_flow_source(name, **options)
    if size is not None:
        frames = torch.zeros(1, 3, *size)
        source(frames, frames)


def held_out_split(windows, clips, fraction: float, window: int) -> tuple[list[int], list[int]]:
    """Row indices of training and held-out windows: of each clip of at least 2·window frames, the last
    max(window, ⌈fraction·frames⌉) frames are held out; windows that cross the cut are dropped."""
    cut = {}
    for clip in clips:
        held = max(window, math.ceil(fraction * clip.num_frames)) if fraction > 0 else 0
        cut[clip.name] = clip.num_frames - held if clip.num_frames >= 2 * window and held else clip.num_frames
    train, held_out = [], []
    for row, (name, index) in enumerate(zip(windows["clip"], windows["frame_index"])):
        if index[-1] < cut[name]:
            train.append(row)
        elif index[0] >= cut[name]:
            held_out.append(row)
    return train, held_out


class NextFrameTask(Task):
    name = "next-frame"
    description = "video frame prediction from the last frames of clips"
    auto_class_name = "AutoModel"
    pipeline_tag = "video-to-video"
    unit = "frames"
    small_scale_below = 100_000
    full_scale = "the paper's model (trained on 428K game frames)"
    arguments = NEXT_FRAME_OPTIONS
    evaluations = (
        Evaluation("next-frame", "adlr_hf.evaluation.next_frame_eval:run_from_args",
                   "a clip folder, a video, or a folder of them (frames in natural name order)",
                   ModelIndexEntry("video-to-video", "Next-frame prediction", "", "", None, "test",
                                   {"psnr": ("psnr", "PSNR"), "ssim": ("ssim", "SSIM"),
                                    "ie": ("ie", "IE (mean RGB error norm)"),
                                    "copy_last_psnr": ("psnr_copy_last_frame", "PSNR, copy-last-frame baseline"),
                                    "copy_last_ssim": ("ssim_copy_last_frame", "SSIM, copy-last-frame baseline"),
                                    "copy_last_ie": ("ie_copy_last_frame", "IE, copy-last-frame baseline")}),
                   (FRAME_STRIDE, Option("--max-windows-per-clip", dict(
                       type=int, default=None, help="next-frame: evaluate at most N windows per clip, spread "
                                                    "evenly (default: all)")))),
    )

    def fits(self, config) -> bool:
        from ..registry import family_for

        model_class = self.model_class(config)
        spec = family_for(config)
        return (model_class is not None and getattr(model_class, "main_input_name", None) == "pixel_values_videos"
                and callable(getattr(model_class, "rollout", None)) and spec is not None
                and spec.processor is not None)

    # -- a run --------------------------------------------------------------------------------------------------------
    def _window(self, args, config) -> int:
        window = args.window if args.window is not None else config.sequence_length + 1
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"--window {window!r} must be an integer >= 2 (past frames plus the target)")
        return window

    def check_args(self, args, config) -> None:
        if not args.data:
            raise ValueError("next-frame needs --data: clip folders (frames), video files, or folders of them")
        for path in args.data:
            if not Path(path).exists():
                raise FileNotFoundError(f"--data {path!r} does not exist; pass clip folders or video files")
        self._window(args, config)
        if isinstance(args.frame_stride, bool) or args.frame_stride < 1:
            raise ValueError(f"--frame-stride {args.frame_stride!r} must be an integer >= 1")
        if not 0.0 <= args.eval_fraction < 1.0:
            raise ValueError(f"--eval-fraction {args.eval_fraction} must be in [0, 1)")
        crop = parse_crop(args.crop_size)
        divisor = getattr(config, "size_divisor", 1)
        if crop is not None and (crop[0] % divisor or crop[1] % divisor):
            raise ValueError(f"--crop-size {args.crop_size} must be a multiple of {divisor} in both sides (the model "
                             f"downsamples by {divisor}); use e.g. {max(1, crop[0] // divisor) * divisor}")
        check_flow_source(config, crop)

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ..data.frames import FrameWindowTransform, find_clips, load_frame_windows
        from ..parallel.state import get_parallel_state
        from ..registry import family_for

        self.check_args(args, config)
        window = self._window(args, config)
        if window != config.sequence_length + 1:
            if init_from is not None:
                raise ValueError(f"--window {window} does not fit the model in {init_from}, which predicts from "
                                 f"sequence_length={config.sequence_length} frames (window "
                                 f"{config.sequence_length + 1}); drop --window")
            config.sequence_length = window - 1
        crop = parse_crop(args.crop_size)
        train_parts, held_parts = [], []
        for path in args.data:
            clips = find_clips(path)
            _check_sizes(clips, crop, getattr(config, "size_divisor", 1))
            windows = load_frame_windows(path, window=window, stride=args.frame_stride)
            train, held = held_out_split(windows, clips, args.eval_fraction, window)
            train_parts.append((windows, train))
            held_parts.append((windows, held))
        train = _joined(train_parts)
        if len(train) == 0:
            raise ValueError(f"no training windows of {window} frames outside the held-out frames of {args.data}; "
                             "lower --eval-fraction or --window, or add frames")
        held_out = _joined(held_parts)
        held_out = held_out if len(held_out) else None
        train_set = EpochFrameWindows(train, FrameWindowTransform(crop, random_crop=True, reverse=args.reverse,
                                                                  flip=args.flip, seed=args.seed))
        eval_set = EpochFrameWindows(held_out, FrameWindowTransform(crop, random_crop=False)) \
            if held_out is not None else None
        extra = {"window": window, "crop_size": list(crop) if crop else None, "frame_stride": args.frame_stride,
                 "train_windows": len(train), "held_out_windows": len(held_out) if held_out is not None else 0}
        if init_from is None and hasattr(config, "fit_input_statistics"):
            fitted = _fit_statistics(config, train, crop, is_main)
            if fitted:
                extra["input_statistics"] = fitted
        state = get_parallel_state()
        metric = NextFrameMetric(state.dp_group if state else None) if eval_set is not None else None
        processor = family_for(config).processor(config)
        return TaskRun(config, train_set, eval_set, next_frame_collate, 1, processor, list(args.data), metric=metric,
                       extra_info=extra)

    def build_optimizer(self, model, args) -> torch.optim.Optimizer:
        """Adam with L2 weight decay on every parameter, as the reference's `main.py` (lr 1e-4, wd 1e-3 there)."""
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                                weight_decay=args.weight_decay)

    # -- the card -------------------------------------------------------------------------------------------------
    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        crop = training.get("crop_size")
        rows = [("predicted frames", _fmt_int(training.get("frames"))),
                ("window (past frames + target)", training.get("window")),
                ("training crop", "full frames" if not crop else f"{crop[0]}×{crop[1]}")]
        stats = training.get("input_statistics")
        if stats:
            rows.append(("flow statistics", f"measured on the training clips with {stats['flow_stats_source']}: mean "
                                            f"{_pair(stats['flow_mean'])}, std {_pair(stats['flow_std'])}"))
        if training.get("eval_psnr") is not None:
            rows.append(("held-out PSNR / SSIM (copy last frame: PSNR)",
                         f"{training['eval_psnr']:.2f} dB / {training['eval_ssim']:.4f} "
                         f"({training['eval_copy_last_psnr']:.2f} dB)"))
        return rows

    def limitations(self, training: dict | None) -> list[str]:
        return super().limitations(training) + [
            "PSNR and SSIM reward blur when the future is uncertain; compare with the copy-last-frame baseline "
            "recorded beside them."]

    def usage_snippet(self, model_id: str) -> str:
        return f"""```python
import adlr_hf  # registers the video-frame-prediction pipeline
from transformers import pipeline

predict = pipeline("video-frame-prediction", model={model_id!r}, trust_remote_code=True)
frames = predict("clip_folder/", num_future_frames=2)  # or a video file, or a list of frames
frames[0].save("next_frame.png")
```"""

    # -- systems ----------------------------------------------------------------------------------------------------
    def systems(self, model, processor, training, measure_inference: bool, runs: int) -> dict:
        crop = tuple((training or {}).get("crop_size") or (DEFAULT_CROP, DEFAULT_CROP))
        try:
            out = {"flops": measure_frame_flops(model, crop), "inference": None}
            if measure_inference:
                out["inference"] = measure_frame_throughput(model, crop, runs=max(runs, 5))
        except (ValueError, ImportError) as err:  # e.g. a model that reads precomputed flows only
            return {"frames": None, "frames_unmeasured": str(err)}
        return {"frames": out}

    def systems_rows(self, systems: dict) -> list[str]:
        video = systems.get("frames")
        if not video:
            return []
        flops = video["flops"]
        size = "×".join(str(v) for v in flops["input_shape"])
        rows = [f"| inference FLOPs per predicted frame ({size}) | {flops['inference_flops_per_frame']:.4g} "
                "(FlopCounterMode: the model's convolutions and matrix products, 2 per multiply-add; an OpenCV flow "
                "source runs outside torch and is not counted) |",
                f"| training FLOPs per predicted frame | {flops['training_flops_per_frame']:.4g} (forward + "
                "backward, counted) |"]
        inf = video.get("inference")
        if inf:
            rows.append(f"| inference throughput | {inf['frames_per_second']:,.2f} frames/s (batch 1, flows "
                        f"included, median of {inf['runs']}, {inf['dtype']}) on {inf['machine']} |")
        return rows


def _pair(values) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"


def _joined(parts):
    """The chosen rows of each --data path's windows as one dataset, `window_id` renumbered 0 .. n-1 (unique across
    paths: augmentation seeds use it)."""
    import datasets

    features = parts[0][0].features
    columns = {name: [] for name in features}
    for windows, rows in parts:
        values = windows.to_dict()
        for name in columns:
            columns[name] += [values[name][row] for row in rows]
    columns["window_id"] = list(range(len(columns["window_id"])))
    return datasets.Dataset.from_dict(columns, features=features)


def _check_sizes(clips, crop, divisor: int) -> None:
    for clip in clips:
        if crop is None and (clip.height % divisor or clip.width % divisor):
            side = max(1, min(clip.height, clip.width) // divisor) * divisor
            raise ValueError(f"clip {clip.name!r} is {clip.width}x{clip.height} (WxH): full frames must be multiples "
                             f"of {divisor}; pass --crop-size (e.g. {side})")
        if crop is not None and (crop[0] > clip.height or crop[1] > clip.width):
            raise ValueError(f"--crop-size {crop[0]}x{crop[1]} (HxW) is larger than clip {clip.name!r} "
                             f"({clip.height}x{clip.width}); use a smaller crop")


def _fit_statistics(config, train, crop, is_main: bool):
    """`config.fit_input_statistics` on up to CALIBRATION_WINDOWS evenly spread training windows (centre crops, no
    augmentation), computed on rank 0 and broadcast so every rank builds the same model."""
    from ..data.frames import FrameWindowTransform, read_window

    result = None
    if is_main:
        transform = FrameWindowTransform(crop, random_crop=False)
        rows = sorted({int(i * (len(train) - 1) / max(1, CALIBRATION_WINDOWS - 1))
                       for i in range(min(CALIBRATION_WINDOWS, len(train)))})
        windows = [transform.apply(read_window(train[row]), 0)[0] for row in rows]
        result = (config.fit_input_statistics(windows), config.to_dict())
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [result]
        dist.broadcast_object_list(box, src=0)
        result = box[0]
    fitted, values = result
    if fitted:
        for key in fitted:
            if key in values:
                setattr(config, key, values[key])
    return fitted


def measure_frame_flops(model, size: tuple[int, int]) -> dict:
    """FLOPs per predicted frame counted by `torch.utils.flop_counter.FlopCounterMode` on one window of random
    frames of `size` (h, w): the eval forward, and forward + backward of the loss."""
    from torch.utils.flop_counter import FlopCounterMode

    frames, target = _probe_frames(model, size, batch=1)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(pixel_values_videos=frames, labels=target)  # warm-up: builds the flow source
            with FlopCounterMode(display=False) as counter:
                model(pixel_values_videos=frames, labels=target)
        forward = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model(pixel_values_videos=frames, labels=target).loss.backward()
        train = counter.get_total_flops()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {"method": "torch.utils.flop_counter.FlopCounterMode, one window, 2 FLOPs per multiply-add",
            "input_shape": [3, *size], "inference_flops_per_frame": int(forward),
            "training_flops_per_frame": int(train)}


@torch.no_grad()
def measure_frame_throughput(model, size: tuple[int, int], runs: int = 5, warmup: int = 1) -> dict:
    """Predicted frames per second of the eval forward at batch 1 from raw frames (the flow source included)."""
    import statistics
    import time

    from ..hub.systems import machine_description

    frames, _ = _probe_frames(model, size, batch=1)
    was_training = model.training
    model.eval()
    timings = []
    try:
        for i in range(warmup + runs):
            if frames.device.type == "cuda":
                torch.cuda.synchronize(frames.device)
            start = time.perf_counter()
            model(pixel_values_videos=frames)
            if frames.device.type == "cuda":
                torch.cuda.synchronize(frames.device)
            if i >= warmup:
                timings.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return {"frames_per_second": 1.0 / statistics.median(timings), "batch_size": 1, "runs": runs,
            "input_shape": [3, *size], "seconds": [round(t, 6) for t in timings],
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "device": str(frames.device),
            "machine": machine_description(frames.device)}


def _probe_frames(model, size, batch: int):
    """A smooth random clip (so a flow source finds structure) of T frames and a target, on the model's device."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    count = config.sequence_length + 1
    coarse = torch.rand(batch, count, 3, max(1, size[0] // 8), max(1, size[1] // 8), generator=generator) * 255
    frames = torch.nn.functional.interpolate(coarse.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
    frames = frames.view(batch, count, 3, *size)
    param = next(model.parameters())
    frames = frames.to(param.device)
    return frames[:, :-1], frames[:, -1]
