"""`video-interpolation`: video frame interpolation trained on clips (frame folders or video files) in one of three
regimes, evaluated with PSNR / SSIM (training) and PSNR / SSIM / IE beside frame averaging
(`adlr-hf evaluate --task frame-interpolation`), as NVIDIA/unsupervised-video-interpolation trains and evaluates
(Reda et al., arXiv 1906.05928; Super SloMo, arXiv 1712.00080).

Regimes (`--regime`):
- `supervised`: samples of num_interp + 2 frames every `--sample-rate` frames (a high-frame-rate clip); the model
  interpolates a random in-between frame from the first and last and is scored against it (the reference's
  `HJSuperSloMo`);
- `cycle`: triplets (I0, I1, I2) of a low-frame-rate clip; P01 = f(I0, I1, t), P12 = f(I1, I2, t) and
  f(P01, P12, 1 - t) must reconstruct I1 (the reference's `CycleHJSuperSloMo` without `--resume`);
- `cycle-ps`: the cycle plus pseudo-supervision from a frozen teacher (`--teacher DIR`, default the `--model` folder
  the run starts from, as the reference's frozen copy of its `--resume` checkpoint; weight `--teacher-weight` 0.8).
  The teacher is attached outside the model's modules: it is not trained, not in the optimizer, not partitioned by
  ZeRO, not wrapped by DDP and not in any checkpoint or export.

The perceptual term (VGG16 features[:22], weight 0.005) is on only with `--vgg-weights FILE` (a local torchvision
VGG16 state dict); the run records, and the model card says, whether it was on. Windows are reversed with
probability 1/2 (`--reverse`, t -> 1 - t). The last `--eval-fraction` of each clip's frames is held out and scored
as interpolation of the middle frame of each held-out sample from its ends.

A model fits when its `AutoModel` class reads `pixel_values_videos` (B, 2, 3, H, W) (and (B, 3, 3, H, W) triplets),
`timesteps` and `labels`, returns `loss` and `interpolated_frames`, offers `interpolate(frames, timesteps)` and
`set_teacher(model, weight)`, and its family has a processor.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import torch

from ..family import Option
from .base import Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int
from . import video_data as video

REGIMES = ("supervised", "cycle", "cycle-ps")
DEFAULT_TEACHER_WEIGHT = 0.8  # the reference's teacher_weight with --resume

INTERP_OPTIONS = (
    Option("--regime", dict(choices=REGIMES, default="cycle",
                            help="video-interpolation: supervised (true in-between frames), cycle (cycle consistency "
                                 "on triplets, no in-between frames needed) or cycle-ps (cycle + pseudo-supervision "
                                 "from a frozen --teacher); default cycle")),
    Option("--teacher", dict(default=None, metavar="DIR",
                             help="video-interpolation, cycle-ps: the frozen teacher, a saved interpolation model "
                                  "folder (default: the --model folder the run starts from)")),
    Option("--teacher-weight", dict(type=float, default=None,
                                    help=f"video-interpolation, cycle-ps: weight of the pseudo-supervised term "
                                         f"(default {DEFAULT_TEACHER_WEIGHT}, the reference's)")),
    Option("--num-interp", dict(type=int, default=1,
                                help="video-interpolation: in-between frames per interval; t is drawn from "
                                     "i / (num_interp + 1) (default 1: t = 0.5)")),
    Option("--sample-rate", dict(type=int, default=1,
                                 help="video-interpolation: frames between consecutive sample frames (the reference's "
                                      "sample_rate; supervised samples span sample_rate * (num_interp + 1) frames, "
                                      "cycle triplets step by max(1, sample_rate) + sample_rate * num_interp; "
                                      "default 1)")),
    Option("--vgg-weights", dict(default=None, metavar="FILE",
                                 help="video-interpolation: a local torchvision VGG16 state dict; turns the "
                                      "perceptual term on (off without it; nothing is downloaded)")),
    video.CROP_SIZE,
    video.FRAME_STRIDE,
    video.REVERSE,
    video.FLIP,
)


def _triplet_frames(outputs, batch):
    """(prediction, target, frame-average baseline) of a batch of (first, last) pairs with their middle frame."""
    frames = batch["pixel_values_videos"].float()
    t = batch["timesteps"][:, :1].to(frames.dtype).view(-1, 1, 1, 1)
    return outputs.interpolated_frames[:, 0], batch["labels"], (1 - t) * frames[:, 0] + t * frames[:, 1]


def interpolation_metrics(predicted, target, average) -> dict[str, torch.Tensor]:
    """Per-frame PSNR / SSIM / IE of interpolated frames and of frame averaging ((1 - t) I0 + t I1), 8-bit."""
    baseline = video.score_frames(average, target)
    return {**video.score_frames(predicted, target),
            **{f"frame_average_{key}": value for key, value in baseline.items()}}


class InterpolationMetric(video.MeanFrameMetric):
    """Training-time evaluation: mean PSNR / SSIM of the interpolated held-out frames and the frame-average PSNR."""

    keys = ("psnr", "ssim", "frame_average_psnr")

    def values(self, outputs, batch) -> dict[str, torch.Tensor]:
        return interpolation_metrics(*_triplet_frames(outputs, batch))


def _model_folder(path) -> Path | None:
    folder = Path(os.path.expanduser(str(path)))
    return folder if (folder / "config.json").is_file() else None


def check_teacher_folder(folder, config) -> Path:
    """The teacher folder, after checking that it holds a model of `config`'s type with weights."""
    path = Path(os.path.expanduser(str(folder)))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--teacher {str(folder)!r} is not a saved model folder (no config.json); pass a "
                                "trained interpolation model folder, e.g. a supervised run's model/")
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--teacher {str(folder)!r}: config.json is not valid JSON ({err})") from None
    if model_type != config.model_type:
        raise ValueError(f"--teacher {str(folder)!r} holds a {model_type!r} model; the pseudo-supervision teacher "
                         f"must be a {config.model_type!r} model (Super SloMo), e.g. a supervised run's model/")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise FileNotFoundError(f"--teacher {str(folder)!r} has no weights (*.safetensors); pass a trained model "
                                "folder")
    return path


class VideoInterpolationTask(Task):
    name = "video-interpolation"
    description = "video frame interpolation: supervised, cycle-consistent or cycle + pseudo-supervised"
    auto_class_name = "AutoModel"
    pipeline_tag = "video-to-video"
    unit = "frames"
    small_scale_below = 100_000
    full_scale = "the paper's models (16 GPUs, hundreds of epochs over Adobe-240fps / YouTube / SlowFlow clips)"
    arguments = INTERP_OPTIONS
    evaluations = (
        Evaluation("frame-interpolation", "adlr_hf.evaluation.frame_interp_eval:run_from_args",
                   "an interpolation set: triplets (input/<seq>/ + gt/<seq>/, or three frames per folder), "
                   "slowflow or sintel clips (--layout)",
                   ModelIndexEntry("video-to-video", "Frame interpolation", "", "", None, "test",
                                   video.frame_quality_columns("frame_average", "frame-average")),
                   (Option("--layout", dict(default="triplets", choices=("triplets", "slowflow", "sintel"),
                                            help="frame-interpolation: the evaluation set's layout (default "
                                                 "triplets)")),
                    Option("--num-interp", dict(type=int, default=None,
                                                help="frame-interpolation: ground-truth frames between the inputs "
                                                     "(default: the layout's, 1 / 7 / 41)")))),
    )

    def fits(self, config) -> bool:
        return video.fits_video_model(self, config, "interpolate", "set_teacher")

    # -- options ------------------------------------------------------------------------------------------------------
    def _teacher_source(self, args) -> str | None:
        if args.teacher is not None:
            return args.teacher
        return str(_model_folder(args.model)) if _model_folder(args.model) is not None else None

    def check_args(self, args, config) -> None:
        from ..data.interp_windows import sample_offsets

        video.check_window_args(self.name, args, config)
        sample_offsets(args.num_interp, args.sample_rate, args.regime != "supervised")
        if args.regime != "cycle-ps":
            for flag, value in (("--teacher", args.teacher), ("--teacher-weight", args.teacher_weight)):
                if value is not None:
                    raise ValueError(f"{flag} applies to --regime cycle-ps (pseudo-supervision); this run trains "
                                     f"--regime {args.regime}: drop {flag} or pass --regime cycle-ps")
        else:
            source = self._teacher_source(args)
            if source is None:
                raise ValueError("--regime cycle-ps needs a teacher: pass --teacher DIR (a trained interpolation "
                                 "model folder), or start from one with --model DIR (its frozen copy is the teacher, "
                                 "as the reference's --resume)")
            check_teacher_folder(source, config)
            weight = args.teacher_weight
            if weight is not None and not weight >= 0:
                raise ValueError(f"--teacher-weight {weight} must be >= 0 (0.8 in the reference)")
        if args.vgg_weights is not None:
            from ..layers.vgg_features import check_vgg16_file

            check_vgg16_file(args.vgg_weights)

    # -- a run ------------------------------------------------------------------------------------------------------
    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ..data.interp_windows import InterpWindowTransform, interp_collate, load_interp_windows, sample_offsets
        from ..registry import family_for

        self.check_args(args, config)
        cycle = args.regime != "supervised"
        offsets = sample_offsets(args.num_interp, args.sample_rate, cycle)
        span = offsets[-1] + 1
        config.num_interp = args.num_interp  # the model's default in-between frames follow its training
        load = functools.partial(load_interp_windows, offsets=offsets, stride=args.frame_stride)
        crop, train, held_out = video.split_windows(args, config, load, span, "--num-interp / --sample-rate")
        train_set = video.EpochFrameWindows(train, InterpWindowTransform(args.num_interp, cycle, crop, random=True,
                                                                   reverse=args.reverse, flip=args.flip,
                                                                   seed=args.seed))
        eval_set = None
        if held_out is not None:
            eval_set = video.EpochFrameWindows(held_out, InterpWindowTransform(args.num_interp, cycle, crop,
                                                                               random=False))
        teacher = self._teacher_source(args) if args.regime == "cycle-ps" else None
        extra = {"regime": args.regime, "num_interp": args.num_interp, "sample_rate": args.sample_rate,
                 "sample_offsets": offsets, **video.window_info(crop, args.frame_stride, train, held_out),
                 "teacher": str(Path(teacher).resolve()) if teacher else None,
                 "teacher_weight": (DEFAULT_TEACHER_WEIGHT if args.teacher_weight is None else args.teacher_weight)
                 if teacher else None,
                 "perceptual": str(Path(args.vgg_weights).resolve()) if args.vgg_weights else None}
        processor = family_for(config).processor(config)
        return TaskRun(config, train_set, eval_set, functools.partial(interp_collate, triplets=cycle), 1, processor,
                       list(args.data), eval_collate=interp_collate, metric=InterpolationMetric.for_eval_set(eval_set),
                       extra_info=extra)

    def build_model(self, run: TaskRun, init_from: Path | None):
        """The model to train, with the frozen teacher (cycle-ps) and the VGG16 features (--vgg-weights) attached
        outside its modules. Both load outside the seeded RNG stream, so the model's initial weights do not depend
        on them."""
        model = super().build_model(run, init_from)
        extra = run.extra_info
        with torch.random.fork_rng(devices=[]):
            if extra.get("teacher"):
                teacher = self.auto_class.from_pretrained(extra["teacher"], tp_size=1)
                model.set_teacher(teacher, extra["teacher_weight"])
            if extra.get("perceptual"):
                from ..layers.vgg_features import load_vgg16_features

                model.set_perceptual_network(load_vgg16_features(extra["perceptual"]))
        return model

    def build_optimizer(self, model, args) -> torch.optim.Optimizer:
        """Adam with L2 weight decay, as the reference's `parser.py` (lr 1e-4, wd 1e-3 there); the model's own
        parameters only (an attached teacher is not among them)."""
        return video.reference_adam(model, args)

    # -- the card -------------------------------------------------------------------------------------------------
    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        regime = training.get("regime")
        what = {"supervised": "supervised (true in-between frames)",
                "cycle": "cycle consistency only (no in-between frames)",
                "cycle-ps": "cycle consistency + pseudo-supervision"}.get(regime, regime or "n/a")
        rows = [("interpolated frames", _fmt_int(training.get("frames"))), ("training regime", what)]
        if regime == "cycle-ps":
            rows.append(("teacher", f"frozen `{Path(str(training.get('teacher'))).name}`, weight "
                                    f"{training.get('teacher_weight')}"))
        rows += [("perceptual term (VGG16 features[:22], 0.005)",
                  f"on (`{Path(training['perceptual']).name}`)" if training.get("perceptual")
                  else "off (no local VGG16 weights were given)"),
                 ("sampling", f"num_interp {training.get('num_interp')}, sample_rate {training.get('sample_rate')}, "
                              f"frame offsets {training.get('sample_offsets')}"),
                 video.crop_row(training)]
        return rows + video.held_out_rows(training, "frame_average", "frame average")

    def limitations(self, training: dict | None) -> list[str]:
        out = super().limitations(training)
        if training and not training.get("perceptual"):
            out.append("It was trained without the reference's perceptual (VGG16) term: no local VGG16 weights were "
                       "given.")
        return out + ["PSNR and SSIM reward blur where motion is ambiguous; compare with the frame-average "
                      "baseline recorded beside them."]

    def usage_snippet(self, model_id: str) -> str:
        return f"""```python
import adlr_hf  # registers the video-frame-interpolation pipeline
from transformers import pipeline

interpolate = pipeline("video-frame-interpolation", model={model_id!r}, trust_remote_code=True)
frames = interpolate(["frame0.png", "frame1.png"], timesteps=[0.25, 0.5, 0.75])  # or a clip folder / video
frames[1].save("middle.png")
```"""

    # -- systems ----------------------------------------------------------------------------------------------------
    def systems(self, model, processor, training, measure_inference: bool, runs: int) -> dict:
        one_frame = {"timesteps": [0.5]}  # one interpolated frame per forward
        return {"frames": video.frame_systems(model, training, measure_inference, runs, **one_frame)}

    def systems_rows(self, systems: dict) -> list[str]:
        return video.frame_systems_rows(systems, "interpolated frame", "the model's convolutions, 2 per multiply-add",
                                        training_loss=" (supervised loss)")
