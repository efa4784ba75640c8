"""What the video tasks (`next-frame`, `video-interpolation`) share: which models fit, their data options and the
checks of them, the epoch-aware dataset of frame windows, the per-clip held-out split of every --data path, frame
scoring on 8-bit frames, the data-parallel mean of frame metrics, the reference optimizer and the systems probes
(FLOPs and frames per second of a model that reads `pixel_values_videos`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.distributed as dist

from ..family import Option
from .base import EvalMetric

DEFAULT_CROP = 256  # SDC-Net trains on 256×256 crops; the interpolation reference on 352² / 384²

__all__ = [
    "CROP_SIZE", "DEFAULT_CROP", "EpochFrameWindows", "FLIP", "FRAME_STRIDE", "MeanFrameMetric", "REVERSE", "crop_row",
    "check_clip_sizes", "check_window_args", "fits_video_model", "frame_quality_columns", "frame_systems",
    "frame_systems_rows",
    "held_out_rows", "held_out_split", "joined_windows",
    "measure_frame_flops", "measure_frame_throughput", "parse_crop", "reference_adam", "score_frames",
    "split_windows", "window_info",
]


def fits_video_model(task, config, *methods: str) -> bool:
    """Whether `task`'s model class for `config` reads `pixel_values_videos` and offers `methods`, and its family has
    a processor (frames -> padded `pixel_values_videos`)."""
    from ..registry import family_for

    model_class = task.model_class(config)
    spec = family_for(config)
    return (model_class is not None and getattr(model_class, "main_input_name", None) == "pixel_values_videos"
            and all(callable(getattr(model_class, method, None)) for method in methods) and spec is not None
            and spec.processor is not None)


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


# One Option object per flag: the video tasks share them, so `adlr-hf train` adds each once.
# Shared by the video tasks and semantic segmentation.
CROP_SIZE = Option("--crop-size", dict(default=str(DEFAULT_CROP), help=(
    "video and segmentation tasks: the random training crop, N or HxW (video: a multiple of the model's size divisor); "
    f"0 = whole frames or images (default {DEFAULT_CROP})")))
FRAME_STRIDE = Option("--frame-stride", dict(type=int, default=1, help="video tasks: windows start every N frames "
                                                                       "(default 1)"))
REVERSE = Option("--reverse", dict(action=argparse.BooleanOptionalAction, default=True,
                                   help="video tasks: play training windows backwards with probability 1/2 (default "
                                        "on, as the references)"))
FLIP = Option("--flip", dict(action="store_true", help="video tasks: flip training windows horizontally with "
                                                       "probability 1/2"))


def check_window_args(task_name: str, args, config) -> tuple[int, int] | None:
    """The options every video task checks before any output: --data paths, --frame-stride and --crop-size (a
    multiple of the model's `size_divisor`). Returns the crop (`parse_crop`)."""
    if not args.data:
        raise ValueError(f"{task_name} needs --data: clip folders (frames), video files, or folders of them")
    for path in args.data:
        if not Path(path).exists():
            raise FileNotFoundError(f"--data {path!r} does not exist; pass clip folders or video files")
    if isinstance(args.frame_stride, bool) or args.frame_stride < 1:
        raise ValueError(f"--frame-stride {args.frame_stride!r} must be an integer >= 1")
    crop = parse_crop(args.crop_size)
    divisor = getattr(config, "size_divisor", 1)
    if crop is not None and (crop[0] % divisor or crop[1] % divisor):
        raise ValueError(f"--crop-size {args.crop_size} must be a multiple of {divisor} in both sides (the model "
                         f"downsamples by {divisor}); use e.g. {max(1, crop[0] // divisor) * divisor}")
    return crop


def score_frames(predicted: torch.Tensor, target: torch.Tensor, quantize: bool = True) -> dict[str, torch.Tensor]:
    """Per-frame PSNR / SSIM / IE (float64, (B,)) of frames (B, 3, H, W) in [0, 255] against targets. Predictions
    are clamped and rounded to 8 bits first (`quantize`), as a saved frame would be (the references cast to uint8
    without clamping or rounding); IE is the mean over pixels of the RGB error norm (the references' scripts)."""
    from ..metrics.ie.ie import interpolation_error
    from ..metrics.psnr.psnr import psnr
    from ..metrics.ssim.ssim import ssim

    predicted = predicted.detach().float()
    predicted = predicted.clamp(0, 255).round() if quantize else predicted
    target = target.detach().float()
    return {"psnr": psnr(predicted, target), "ssim": ssim(predicted, target),
            "ie": interpolation_error(predicted, target, color="mean_l2")}


def frame_quality_columns(baseline: str, label: str) -> dict[str, tuple[str, str]]:
    """The model-index columns of a frame evaluation: PSNR / SSIM / IE of the model, then of the baseline the
    evaluation also scores (result keys `<baseline>_<metric>`, metric types `<metric>_<label as a name>`)."""
    names = {"psnr": "PSNR", "ssim": "SSIM", "ie": "IE (mean RGB error norm)"}
    columns = {key: (key, name) for key, name in names.items()}
    for key, name in names.items():
        columns[f"{baseline}_{key}"] = (f"{key}_{label.replace('-', '_')}", f"{name.split(' ')[0]}, {label} baseline")
    return columns


def crop_row(training: dict) -> tuple[str, str]:
    """The card row naming the training crop a video run recorded."""
    crop = training.get("crop_size")
    return ("training crop", "full frames" if not crop else f"{crop[0]}×{crop[1]}")


def held_out_rows(training: dict, baseline: str, label: str) -> list[tuple[str, str]]:
    """The card row of the held-out PSNR / SSIM a video run recorded, beside its `baseline`'s PSNR (none if the run
    evaluated nothing)."""
    if training.get("eval_psnr") is None:
        return []
    return [(f"held-out PSNR / SSIM ({label}: PSNR)", f"{training['eval_psnr']:.2f} dB / {training['eval_ssim']:.4f} "
                                                    f"({training[f'eval_{baseline}_psnr']:.2f} dB)")]


class MeanFrameMetric(EvalMetric):
    """Training-time evaluation: the mean of per-frame values (`values(outputs, batch)` -> {key: (B,)}) over every
    data-parallel rank."""

    keys: tuple[str, ...] = ()

    def __init__(self, dp_group=None):
        self.dp_group = dp_group
        self.reset()

    def values(self, outputs, batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.keys) + 1, dtype=torch.float64)

    def add_batch(self, outputs, batch) -> None:
        values = self.values(outputs, batch)
        for i, key in enumerate(self.keys):
            self.sums[i] += values[key].sum().cpu()
        self.sums[-1] += values[self.keys[0]].numel()

    @classmethod
    def for_eval_set(cls, eval_set) -> "MeanFrameMetric | None":
        """The metric over this run's data-parallel group; None when there is nothing held out."""
        from ..parallel.state import get_parallel_state

        if eval_set is None:
            return None
        state = get_parallel_state()
        return cls(state.dp_group if state else None)

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


def joined_windows(parts):
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


def split_windows(args, config, load_windows, span: int, lower: str):
    """(crop, training windows, held-out windows or None) of every --data path: `load_windows(path)` reads a path's
    windows of `span` frames, `held_out_split` divides each clip by --eval-fraction, `joined_windows` joins the
    paths. Clip sizes are checked against --crop-size and the model's divisor first; no training window left is
    an error whose fix names `lower` (the task's options that shorten a window)."""
    from ..data.frames import find_clips

    crop = parse_crop(args.crop_size)
    train_parts, held_parts = [], []
    for path in args.data:
        clips = find_clips(path)
        check_clip_sizes(clips, crop, getattr(config, "size_divisor", 1))
        windows = load_windows(path)
        train, held = held_out_split(windows, clips, args.eval_fraction, span)
        train_parts.append((windows, train))
        held_parts.append((windows, held))
    train, held_out = joined_windows(train_parts), joined_windows(held_parts)
    if len(train) == 0:
        raise ValueError(f"no training windows spanning {span} frames outside the held-out frames of {args.data}; "
                         f"lower --eval-fraction or {lower}, or add frames")
    return crop, train, (held_out if len(held_out) else None)


def window_info(crop, frame_stride: int, train, held_out) -> dict:
    """What run_info.json records of a video run's windows."""
    return {"crop_size": list(crop) if crop else None, "frame_stride": frame_stride, "train_windows": len(train),
            "held_out_windows": len(held_out) if held_out is not None else 0}


def check_clip_sizes(clips, crop, divisor: int) -> None:
    """Full frames must be multiples of the model's divisor; a crop must fit every clip."""
    for clip in clips:
        if crop is None and (clip.height % divisor or clip.width % divisor):
            side = max(1, min(clip.height, clip.width) // divisor) * divisor
            raise ValueError(f"clip {clip.name!r} is {clip.width}x{clip.height} (WxH): full frames must be multiples "
                             f"of {divisor}; pass --crop-size (e.g. {side})")
        if crop is not None and (crop[0] > clip.height or crop[1] > clip.width):
            raise ValueError(f"--crop-size {crop[0]}x{crop[1]} (HxW) is larger than clip {clip.name!r} "
                             f"({clip.height}x{clip.width}); use a smaller crop")


def reference_adam(model, args) -> torch.optim.Optimizer:
    """Adam with L2 weight decay on every trainable parameter, as both video references (lr 1e-4, wd 1e-3 there)."""
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=args.weight_decay)


# -- systems probes --------------------------------------------------------------------------------------------
def frame_systems(model, training: dict | None, measure_inference: bool, runs: int, **forward_kwargs) -> dict:
    """The card's systems numbers of a video model on frames of its training crop (default DEFAULT_CROP²): FLOPs per
    output frame and, when `measure_inference`, output frames per second. `forward_kwargs` go to every call."""
    crop = tuple((training or {}).get("crop_size") or (DEFAULT_CROP, DEFAULT_CROP))
    out = {"flops": measure_frame_flops(model, crop, **forward_kwargs), "inference": None}
    if measure_inference:
        out["inference"] = measure_frame_throughput(model, crop, runs=max(runs, 5), **forward_kwargs)
    return out


def frame_systems_rows(systems: dict, frame: str, counted: str, training_loss: str = "",
                       throughput_note: str = "") -> list[str]:
    """The card's systems rows of a video task's `frame_systems` measurement: FLOPs per `frame` (what `counted`
    covers; `training_loss` names the loss the training count used) and the inference throughput."""
    measured = systems.get("frames")
    if not measured:
        return []
    flops = measured["flops"]
    size = "×".join(str(v) for v in flops["input_shape"])
    rows = [f"| inference FLOPs per {frame} ({size}) | {flops['inference_flops_per_frame']:.4g} "
            f"(FlopCounterMode: {counted}) |",
            f"| training FLOPs per {frame}{training_loss} | {flops['training_flops_per_frame']:.4g} (forward + "
            "backward, counted) |"]
    inference = measured.get("inference")
    if inference:
        rows.append(f"| inference throughput | {inference['frames_per_second']:,.2f} {frame}s/s (batch 1, "
                    f"{throughput_note}median of {inference['runs']}, {inference['dtype']}) on "
                    f"{inference['machine']} |")
    return rows


def measure_frame_flops(model, size: tuple[int, int], **forward_kwargs) -> dict:
    """FLOPs per output frame counted by `torch.utils.flop_counter.FlopCounterMode` on one window of random frames of
    `size` (h, w): the eval forward, and forward + backward of the loss. `forward_kwargs` go to every call."""
    from torch.utils.flop_counter import FlopCounterMode

    frames, target = _probe_frames(model, size, batch=1)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(pixel_values_videos=frames, labels=target, **forward_kwargs)  # warm-up (e.g. builds a flow source)
            with FlopCounterMode(display=False) as counter:
                model(pixel_values_videos=frames, labels=target, **forward_kwargs)
        forward = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model(pixel_values_videos=frames, labels=target, **forward_kwargs).loss.backward()
        train = counter.get_total_flops()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {"method": "torch.utils.flop_counter.FlopCounterMode, one window, 2 FLOPs per multiply-add",
            "input_shape": [3, *size], "inference_flops_per_frame": int(forward),
            "training_flops_per_frame": int(train)}


@torch.no_grad()
def measure_frame_throughput(model, size: tuple[int, int], runs: int = 5, warmup: int = 1, **forward_kwargs) -> dict:
    """Output frames per second of the eval forward at batch 1 from raw frames of `size` (one output frame per call:
    pass what makes it so in `forward_kwargs`)."""
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
            model(pixel_values_videos=frames, **forward_kwargs)
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
    """A smooth random clip (so a flow source finds structure) of `config.sequence_length` frames and a target, on
    the model's device."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    count = config.sequence_length + 1
    coarse = torch.rand(batch, count, 3, max(1, size[0] // 8), max(1, size[1] // 8), generator=generator) * 255
    frames = torch.nn.functional.interpolate(coarse.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
    frames = frames.view(batch, count, 3, *size)
    param = next(model.parameters())
    frames = frames.to(param.device)
    return frames[:, :-1], frames[:, -1]
