"""`landmark-dynamics`: train the landmark dynamics LSTM on landmark sequences that a frozen landmark model extracts
from clips (Shih et al., arXiv 1909.02749: prediction in landmark space; the paper's temporal model was never
released, so this task follows the paper's description).

    adlr-hf train --model landmark-dynamics-tiny --task landmark-dynamics --init-from LANDMARK_MODEL --data CLIPS

Every frame of every clip (frame folders or video files, the platform's loaders) is centre-cropped to a square,
resized to the landmark model's `image_size`, scaled to [-1, 1] and encoded once by the frozen landmark model
(`encode_pose`: means and covariances). Windows of `past_frames + future_frames` consecutive landmark sets
(starting every `--frame-stride` frames) are the samples: the model reads the past ones and is scored (L2) on the
future ones. The last `--eval-fraction` of each clip is held out (the platform's per-clip split) and scored by free
roll-out beside the copy-last-landmarks baseline. The landmark model is saved beside the export
(`model/landmark_model/`), so the evaluations and the pipeline find it there.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from ...family import Option
from ...tasks import video_data as video
from ...tasks.base import Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int

LANDMARK_MODEL_DIR = "landmark_model"  # the landmark model's folder inside an exported dynamics model

DYNAMICS_OPTIONS = (
    Option("--init-from", dict(default=None, metavar="LANDMARK_MODEL",
                               help="landmark-dynamics: the trained landmark model folder whose landmarks the "
                                    "dynamics model learns (frozen; required)")),
    Option("--past-frames", dict(type=int, default=None,
                                 help="landmark-dynamics: landmark sets the model reads (default: the config's)")),
    Option("--future-frames", dict(type=int, default=None,
                                   help="landmark-dynamics: landmark sets it predicts per sample (default: the "
                                        "config's)")),
    video.FRAME_STRIDE,
)
LANDMARK_MODEL_OPTION = Option("--landmark-model", dict(default=None, metavar="DIR",
                                                        help="landmark evaluations: the landmark model (default: "
                                                             "MODEL itself, or MODEL/landmark_model/)"))


# -- frames and landmarks ------------------------------------------------------------------------------------------
def square_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, 3, size, size) in [-1, 1]: the centred square crop, resized (antialiased)."""
    t, h, w, _ = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = frames[:, top:top + side, left:left + side].permute(0, 3, 1, 2).float()
    if side != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
    return x / 127.5 - 1


def read_clip(clip, size: int) -> torch.Tensor:
    """Every frame of a clip (`data.frames.Clip`) as (T, 3, size, size) in [-1, 1]."""
    from ...data.frames import read_window

    row = {"clip": clip.name, "kind": clip.kind, "source": clip.source, "files": list(clip.files),
           "frame_index": list(range(clip.num_frames))}
    return square_frames(torch.from_numpy(read_window(row)), size)


@torch.no_grad()
def encode_clip(landmark_model, frames: torch.Tensor, batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu (T, K, 2), covariance (T, K, 2, 2)) of frames (T, 3, H, W) in [-1, 1], in float32 on the CPU."""
    param = next(landmark_model.parameters())
    mus, covariances = [], []
    for start in range(0, len(frames), batch_size):
        pose = landmark_model.encode_pose(frames[start:start + batch_size].to(param.device, param.dtype))
        mus.append(pose.mu.float().cpu())
        covariances.append(pose.covariance.float().cpu())
    return torch.cat(mus), torch.cat(covariances)


def read_landmark_config(folder):
    """The config of a saved landmark model; a folder without one is a clear error."""
    from transformers import AutoConfig

    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"landmark model {str(folder)!r} is not a saved model folder (no config.json); pass "
                                "a trained landmark model (e.g. a landmark-autoencoding run's model/)")
    config = AutoConfig.from_pretrained(path)
    if config.model_type != "adlr_landmark_video":
        raise ValueError(f"{str(folder)!r} holds a {config.model_type!r} model, not a landmark model "
                         "('adlr_landmark_video'); pass a landmark-autoencoding run's model/")
    return config


def load_landmark_model(folder, device=None):
    """A saved landmark model (AutoModel), frozen, in eval mode; a folder without one is a clear error."""
    from transformers import AutoModel

    path = Path(folder).expanduser()
    read_landmark_config(path)
    with torch.random.fork_rng(devices=[]):  # loading does not move the trained model's seeded stream
        model = AutoModel.from_pretrained(path, tp_size=1)
    if device is not None:
        model.to(device)
    return model.eval().requires_grad_(False)


class LandmarkSequences(torch.utils.data.Dataset):
    """Windows of landmark sets: {"landmarks", "covariances" (past), "labels", "label_covariances" (future)}."""

    def __init__(self, per_clip: dict, windows: list[tuple[str, int]], past: int, future: int):
        self.per_clip, self.windows, self.past, self.future = per_clip, windows, past, future

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index):
        clip, start = self.windows[int(index)]
        mu, cov = self.per_clip[clip]
        middle, end = start + self.past, start + self.past + self.future
        return {"landmarks": mu[start:middle], "covariances": cov[start:middle], "labels": mu[middle:end],
                "label_covariances": cov[middle:end]}


def sequence_collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([e[key] for e in examples]) for key in examples[0]}


class LandmarkRolloutMetric(video.MeanFrameMetric):
    """Training-time evaluation: mean squared error of the freely rolled-out landmark coordinates, and of copying
    the last observed ones (the baseline), per held-out sequence."""

    keys = ("landmark_mse", "copy_last_landmark_mse")

    def values(self, outputs, batch) -> dict[str, torch.Tensor]:
        labels = batch["labels"].float()
        copy = batch["landmarks"][:, -1:].float().expand_as(labels)
        return {"landmark_mse": (outputs.predicted_landmarks.float() - labels).pow(2).flatten(1).mean(1),
                "copy_last_landmark_mse": (copy - labels).pow(2).flatten(1).mean(1)}


class LandmarkModelCarrier:
    """The export's companion: writes the frozen landmark model into `<export>/landmark_model/`."""

    def __init__(self, landmark_model):
        self.landmark_model = landmark_model

    def save_pretrained(self, folder) -> None:
        self.landmark_model.save_pretrained(Path(folder) / LANDMARK_MODEL_DIR)


def _count(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"--{name} {value!r} must be an integer >= {low}")
    return value


def _frame_columns(label: str) -> dict[str, tuple[str, str]]:
    return {"psnr": ("psnr", f"PSNR, {label}"), "ssim": ("ssim", f"SSIM, {label}")}


class LandmarkDynamicsTask(Task):
    name = "landmark-dynamics"
    description = "landmark-space video prediction: an LSTM over landmarks extracted by a frozen landmark model"
    auto_class_name = "AutoModel"
    unit = "examples"
    small_scale_below = 100_000
    full_scale = "a model trained on a full video dataset (BBC Pose, thousands of clips)"
    arguments = DYNAMICS_OPTIONS
    evaluations = (
        Evaluation("landmark-interpolation",
                   "adlr_hf.models.landmark_video.evaluation_landmark_video:run_interpolation_from_args",
                   "clips (frame folders or videos, or a folder of them); key frames every gap + 1 frames",
                   ModelIndexEntry("video-to-video", "Landmark-space frame interpolation", "", "", None, "test",
                                   {"psnr": ("psnr", "PSNR, decoded"), "ssim": ("ssim", "SSIM, decoded"),
                                    "landmark_warp_psnr": ("psnr_landmark_warp", "PSNR, key frames warped"),
                                    "landmark_warp_ssim": ("ssim_landmark_warp", "SSIM, key frames warped"),
                                    "frame_average_psnr": ("psnr_frame_average", "PSNR, frame-average baseline"),
                                    "frame_average_ssim": ("ssim_frame_average", "SSIM, frame-average baseline"),
                                    "interpolation_model_psnr": ("psnr_interpolation_model",
                                                                 "PSNR, interpolation-model baseline"),
                                    "interpolation_model_ssim": ("ssim_interpolation_model",
                                                                 "SSIM, interpolation-model baseline")}),
                   (Option("--gaps", dict(type=int, nargs="+", default=[3, 7],
                                          help="landmark-interpolation: frames between key frames (default 3 7)")),
                    Option("--interpolation", dict(choices=("linear", "cubic"), default="linear",
                                                   help="landmark-interpolation: coordinate path (default linear)")),
                    Option("--keypoints", dict(default=None, metavar="JSON",
                                               help="landmark-interpolation: annotated keypoints {clip: {frame: "
                                                    "[[x, y], ...]}} in pixels of the original frames; adds the "
                                                    "landmark regression protocol")),
                    Option("--interpolation-model", dict(default=None, metavar="DIR",
                                                         help="landmark-interpolation: a trained frame-"
                                                              "interpolation model (a video-interpolation run's "
                                                              "model/) scored as a baseline on the same frames")),
                    LANDMARK_MODEL_OPTION),
                   also_fits=("adlr_landmark_video",)),  # interpolation needs only the landmark model
        Evaluation("landmark-prediction",
                   "adlr_hf.models.landmark_video.evaluation_landmark_video:run_prediction_from_args",
                   "clips (frame folders or videos, or a folder of them)",
                   ModelIndexEntry("video-to-video", "Landmark-space frame prediction", "", "", None, "test",
                                   {"psnr": ("psnr", "PSNR, decoded"), "ssim": ("ssim", "SSIM, decoded"),
                                    "landmark_warp_psnr": ("psnr_landmark_warp", "PSNR, last frame warped"),
                                    "landmark_warp_ssim": ("ssim_landmark_warp", "SSIM, last frame warped"),
                                    "copy_last_psnr": ("psnr_copy_last_frame", "PSNR, copy-last-frame baseline"),
                                    "copy_last_ssim": ("ssim_copy_last_frame", "SSIM, copy-last-frame baseline"),
                                    "prediction_model_psnr": ("psnr_prediction_model",
                                                              "PSNR, prediction-model baseline"),
                                    "prediction_model_ssim": ("ssim_prediction_model",
                                                              "SSIM, prediction-model baseline")}),
                   (Option("--horizon", dict(type=int, default=10,
                                             help="landmark-prediction: frames predicted after the past ones "
                                                  "(default 10)")),
                    Option("--prediction-model", dict(default=None, metavar="DIR",
                                                      help="landmark-prediction: a trained next-frame model (a "
                                                           "next-frame run's model/, e.g. SDC-Net) rolled out as a "
                                                           "baseline on the same frames")),
                    LANDMARK_MODEL_OPTION)),
    )

    def fits(self, config) -> bool:
        return getattr(config, "model_type", None) == "adlr_landmark_dynamics" and super().fits(config)

    def _sizes(self, args, config) -> tuple[int, int]:
        past = config.past_frames if args.past_frames is None else _count("past-frames", args.past_frames)
        future = config.future_frames if args.future_frames is None else _count("future-frames", args.future_frames)
        return past, future

    def check_args(self, args, config) -> None:
        if args.init_from is None:
            raise ValueError("landmark-dynamics needs --init-from LANDMARK_MODEL: the trained landmark model folder "
                             "whose landmarks the dynamics model learns")
        if not args.data:
            raise ValueError("landmark-dynamics needs --data: clip folders (frames), video files, or folders of them")
        for path in args.data:
            if not Path(path).exists():
                raise FileNotFoundError(f"--data {path!r} does not exist; pass clip folders or video files")
        _count("frame-stride", args.frame_stride)
        landmark_config = read_landmark_config(args.init_from)
        if Path(args.model).expanduser().is_dir():  # a trained dynamics model continues: its K must fit
            config.check_landmark_model(landmark_config)
        past, future = self._sizes(args, config)
        self._clips(args, past + future)

    def _clips(self, args, span: int) -> list[tuple[str, object]]:
        """(name, clip) of every clip of at least `span` frames under the --data paths; none is an error."""
        from ...data.frames import find_clips

        out = []
        for path in args.data:
            for clip in find_clips(path):
                if clip.num_frames >= span:
                    out.append((clip.name if len(args.data) == 1 else f"{path}:{clip.name}", clip))
        if not out:
            raise ValueError(f"no clip under {args.data} has past_frames + future_frames = {span} frames; lower "
                             "--past-frames / --future-frames or add longer clips")
        return out

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        self.check_args(args, config)
        past, future = self._sizes(args, config)
        landmark_model = load_landmark_model(args.init_from)
        if init_from is None:  # a new dynamics model takes the landmark model's K and records its config
            config.landmark_config = landmark_model.config.to_dict()
            config.num_landmarks = landmark_model.config.num_landmarks
        config.check_landmark_model(landmark_model.config)
        config.past_frames, config.future_frames = past, future
        span = past + future
        per_clip, rows, clips = {}, {"clip": [], "frame_index": []}, []
        for name, clip in self._clips(args, span):
            clips.append(SimpleNamespace(name=name, num_frames=clip.num_frames))
            per_clip[name] = encode_clip(landmark_model, read_clip(clip, landmark_model.config.image_size))
            for start in range(0, clip.num_frames - span + 1, args.frame_stride):
                rows["clip"].append(name)
                rows["frame_index"].append(list(range(start, start + span)))
        train_rows, held_rows = video.held_out_split(rows, clips, args.eval_fraction, span)
        if not train_rows:
            raise ValueError(f"no training sequences of {span} landmark sets outside the held-out frames of "
                             f"{args.data}; lower --eval-fraction or --past-frames / --future-frames")
        windows = list(zip(rows["clip"], (index[0] for index in rows["frame_index"])))
        train = LandmarkSequences(per_clip, [windows[i] for i in train_rows], past, future)
        held_out = LandmarkSequences(per_clip, [windows[i] for i in held_rows], past, future) if held_rows else None
        extra = {"landmark_model": str(Path(args.init_from).resolve()), "past_frames": past, "future_frames": future,
                 "frame_stride": args.frame_stride, "train_sequences": len(train),
                 "held_out_sequences": len(held_out) if held_out is not None else 0,
                 "image_size": landmark_model.config.image_size}
        return TaskRun(config, train, held_out, sequence_collate, 1, LandmarkModelCarrier(landmark_model),
                       list(args.data), metric=LandmarkRolloutMetric.for_eval_set(held_out), extra_info=extra)

    def build_optimizer(self, model, args) -> torch.optim.Optimizer:
        """Adam on every parameter (weight decay --weight-decay), as the landmark model's reference trains."""
        return video.reference_adam(model, args)

    # -- the card -------------------------------------------------------------------------------------------------
    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        rows = [("sequences seen", _fmt_int(training.get("examples"))),
                ("past / future landmark sets", f"{training.get('past_frames')} / {training.get('future_frames')}"),
                ("landmark model", f"`{Path(str(training.get('landmark_model'))).name}` (frozen; frames centre-"
                                   f"cropped to {training.get('image_size')}²)")]
        if training.get("eval_landmark_mse") is not None:
            rows.append(("held-out landmark MSE (copy last landmarks)",
                         f"{training['eval_landmark_mse']:.5f} ({training['eval_copy_last_landmark_mse']:.5f})"))
        return rows

    def limitations(self, training: dict | None) -> list[str]:
        return super().limitations(training) + [
            "The dynamics model only makes sense with the landmark model it was trained on (saved beside it in "
            "landmark_model/); landmarks of another landmark model mean other things even with the same K.",
            "Predicted frames are decoded with the appearance of the last observed frame: new content (a mouth "
            "opening, a turned head) is not invented. With synthesis=\"warp\" the last observed frame's own pixels "
            "are moved to the predicted landmarks instead: sharper, but nothing hidden in that frame can appear."]

    def usage_snippet(self, model_id: str) -> str:
        return f"""```python
import adlr_hf  # registers the landmark-video pipeline
from transformers import pipeline

predict = pipeline("landmark-video", model={model_id!r}, trust_remote_code=True)
frames = predict("clip_folder/", mode="predict", num_future_frames=5)  # or mode="interpolate", gap=3
frames[0].save("next_frame.png")
between = predict("clip_folder/", mode="interpolate", gap=7, synthesis="warp")  # key frames warped, not decoded
```"""


def register_landmark_pipeline() -> None:
    """The `landmark-video` pipeline, imported only when the family registers."""
    from .pipeline_landmark_video import register_pipeline

    register_pipeline()


__all__ = ["LANDMARK_MODEL_DIR", "LandmarkDynamicsTask", "encode_clip", "load_landmark_model", "read_clip",
           "register_landmark_pipeline", "square_frames"]
