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

import functools
from pathlib import Path

import torch
import torch.distributed as dist

from ..family import Option
from .base import Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int
from . import video_data as video

CALIBRATION_WINDOWS = 8  # training windows `fit_input_statistics` sees


NEXT_FRAME_OPTIONS = (
    video.CROP_SIZE,
    Option("--window", dict(type=int, default=None, help="next-frame: frames per sample, the past frames plus the "
                                                         "target (default: the model's sequence_length + 1)")),
    video.FRAME_STRIDE,
    video.REVERSE,
    video.FLIP,
)


def frame_metrics(predicted: torch.Tensor, target: torch.Tensor, last: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame PSNR / SSIM / IE (float64, (B,)) of predictions and of the copy-last-frame baseline (frames
    (B, 3, H, W) in [0, 255]; `video.score_frames`: 8-bit predictions, IE as the reference's `main.py`)."""
    baseline = video.score_frames(last, target, quantize=False)  # a real frame, scored as it is
    return {**video.score_frames(predicted, target), **{f"copy_last_{key}": value for key, value in baseline.items()}}


class NextFrameMetric(video.MeanFrameMetric):
    """Training-time evaluation: mean PSNR / SSIM of the predicted frames and the copy-last-frame PSNR, over every
    data-parallel rank (the metric modules' torch functions)."""

    keys = ("psnr", "ssim", "copy_last_psnr")

    def values(self, outputs, batch) -> dict[str, torch.Tensor]:
        return frame_metrics(outputs.predicted_frame, batch["labels"], batch["pixel_values_videos"][:, -1])


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
                                   video.frame_quality_columns("copy_last", "copy-last-frame")),
                   (video.FRAME_STRIDE, Option("--max-windows-per-clip", dict(
                       type=int, default=None, help="next-frame: evaluate at most N windows per clip, spread "
                                                    "evenly (default: all)")))),
    )

    def fits(self, config) -> bool:
        return video.fits_video_model(self, config, "rollout")

    # -- a run --------------------------------------------------------------------------------------------------------
    def _window(self, args, config) -> int:
        window = args.window if args.window is not None else config.sequence_length + 1
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"--window {window!r} must be an integer >= 2 (past frames plus the target)")
        return window

    def check_args(self, args, config) -> None:
        crop = video.check_window_args(self.name, args, config)
        self._window(args, config)
        if not 0.0 <= args.eval_fraction < 1.0:
            raise ValueError(f"--eval-fraction {args.eval_fraction} must be in [0, 1)")
        check_flow_source(config, crop)

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ..data.frames import FrameWindowTransform, load_frame_windows
        from ..registry import family_for

        self.check_args(args, config)
        window = self._window(args, config)
        if window != config.sequence_length + 1:
            if init_from is not None:
                raise ValueError(f"--window {window} does not fit the model in {init_from}, which predicts from "
                                 f"sequence_length={config.sequence_length} frames (window "
                                 f"{config.sequence_length + 1}); drop --window")
            config.sequence_length = window - 1
        load = functools.partial(load_frame_windows, window=window, stride=args.frame_stride)
        crop, train, held_out = video.split_windows(args, config, load, window, "--window")
        train_set = video.EpochFrameWindows(train, FrameWindowTransform(crop, random_crop=True, reverse=args.reverse,
                                                                  flip=args.flip, seed=args.seed))
        eval_set = video.EpochFrameWindows(held_out, FrameWindowTransform(crop, random_crop=False)) \
            if held_out is not None else None
        extra = {"window": window, **video.window_info(crop, args.frame_stride, train, held_out)}
        if init_from is None and hasattr(config, "fit_input_statistics"):
            fitted = _fit_statistics(config, train, crop, is_main)
            if fitted:
                extra["input_statistics"] = fitted
        processor = family_for(config).processor(config)
        return TaskRun(config, train_set, eval_set, next_frame_collate, 1, processor, list(args.data),
                       metric=NextFrameMetric.for_eval_set(eval_set), extra_info=extra)

    def build_optimizer(self, model, args) -> torch.optim.Optimizer:
        """Adam with L2 weight decay on every parameter, as the reference's `main.py` (lr 1e-4, wd 1e-3 there)."""
        return video.reference_adam(model, args)

    # -- the card -------------------------------------------------------------------------------------------------
    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        rows = [("predicted frames", _fmt_int(training.get("frames"))),
                ("window (past frames + target)", training.get("window")), video.crop_row(training)]
        stats = training.get("input_statistics")
        if stats:
            rows.append(("flow statistics", f"measured on the training clips with {stats['flow_stats_source']}: mean "
                                            f"{_pair(stats['flow_mean'])}, std {_pair(stats['flow_std'])}"))
        return rows + video.held_out_rows(training, "copy_last", "copy last frame")

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
        try:
            return {"frames": video.frame_systems(model, training, measure_inference, runs)}
        except (ValueError, ImportError) as err:  # e.g. a model that reads precomputed flows only
            return {"frames": None, "frames_unmeasured": str(err)}

    def systems_rows(self, systems: dict) -> list[str]:
        return video.frame_systems_rows(
            systems, "predicted frame", "the model's convolutions and matrix products, 2 per multiply-add; an OpenCV "
            "flow source runs outside torch and is not counted", throughput_note="flows included, ")


def _pair(values) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"


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
