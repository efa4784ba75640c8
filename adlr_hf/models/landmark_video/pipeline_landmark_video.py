"""The `landmark-video` pipeline (transformers' pipeline registry): landmarks of frames, and frames interpolated or
predicted in landmark space (Shih et al., "Video Interpolation and Prediction with Unsupervised Landmarks", arXiv
1909.02749; landmark model after NVIDIA/UnsupervisedLandmarkLearning).

    lv = pipeline("landmark-video", model="dynamics-or-landmark-folder", trust_remote_code=True)
    lv("frame.png", mode="landmarks")              # [{"mu": K × (x, y) in [-1, 1], "pixels": K × (x, y), ...}]
    lv("clip_folder/", mode="interpolate", gap=3)  # the clip with gap frames between every two (PIL images)
    lv("clip.mp4", mode="predict", num_future_frames=5)   # the frames after the clip (a dynamics model)
    lv("clip_folder/", mode="interpolate", gap=7, synthesis="warp")  # key frames warped to the landmarks

The model folder is a landmark model (landmarks, interpolation) or a dynamics model (all three), whose landmark
model is its `landmark_model/` sub-folder (or `landmark_model=` a folder or a loaded model). Frames (PIL images,
(H, W, 3) uint8 arrays, image paths, a frame folder or a video) are centre-cropped to a square and resized to the
landmark model's image size, as the landmark tasks read them; output frames have that size. `synthesis` makes frames
from landmarks with the decoder ("decoder", the paper's, default) or by warping the given frames to them ("warp":
the two key frames around an interpolated frame, the last frame for a prediction).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import Pipeline

from ...data.frame_inputs import ClipInput, read_clip
from .evaluation_landmark_video import resolve_landmark_folder, to_pixels
from .interpolation_landmarks import MODES, check_synthesis, interpolate_frames
from .task_landmark_dynamics import load_landmark_model, square_frames

PIPELINE_TASK = "landmark-video"
PIPELINE_MODES = ("landmarks", "interpolate", "predict")


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be an integer >= 1")
    return value


class LandmarkVideoPipeline(Pipeline):
    """`pipeline("landmark-video")`: `mode` "landmarks" (default), "interpolate" (`gap`, `interpolation`) or
    "predict" (`num_future_frames`); `synthesis` "decoder" (default) or "warp" for the last two."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False

    def __init__(self, *args, landmark_model=None, **kwargs):
        self._landmark_source = landmark_model
        self._landmark_model = None
        super().__init__(*args, **kwargs)

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, (list, tuple)):  # one clip, not a batch of inputs
            inputs = ClipInput(inputs)
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, mode=None, gap=None, interpolation=None, num_future_frames=None, synthesis=None,
                             **kwargs):
        if kwargs:
            raise ValueError(f"unknown options {sorted(kwargs)}; landmark-video takes mode, gap, interpolation, "
                             "num_future_frames and synthesis")
        forward = {"mode": mode or "landmarks"}
        if forward["mode"] not in PIPELINE_MODES:
            raise ValueError(f"mode={mode!r} must be one of {PIPELINE_MODES}")
        if gap is not None:
            forward["gap"] = _positive("gap", gap)
        if interpolation is not None:
            if interpolation not in MODES:
                raise ValueError(f"interpolation={interpolation!r} must be one of {MODES}")
            forward["interpolation"] = interpolation
        if num_future_frames is not None:
            forward["num_future_frames"] = _positive("num_future_frames", num_future_frames)
        if synthesis is not None:
            forward["synthesis"] = check_synthesis(synthesis)
        return {"mode": forward["mode"]}, forward, {"mode": forward["mode"]}

    # -- the landmark model ---------------------------------------------------------------------------------------
    @property
    def is_dynamics(self) -> bool:
        return self.model.config.model_type == "adlr_landmark_dynamics"

    def landmark_model(self):
        if self._landmark_model is None:
            source = self._landmark_source
            if source is None and not self.is_dynamics:
                self._landmark_model = self.model
            elif isinstance(source, torch.nn.Module):
                self._landmark_model = source.eval()
            else:
                folder = resolve_landmark_folder(self.model.config._name_or_path, source)
                self._landmark_model = load_landmark_model(folder, self.device)
            if self.is_dynamics:
                self.model.config.check_landmark_model(self._landmark_model.config)
        return self._landmark_model

    # -- the steps ----------------------------------------------------------------------------------------------------
    def preprocess(self, inputs, mode="landmarks"):
        model = self.landmark_model()
        if mode == "predict" and not self.is_dynamics:
            raise ValueError("mode='predict' needs a landmark dynamics model (a landmark-dynamics run's model/); "
                             "this folder holds a landmark model only")
        if mode == "landmarks" and not isinstance(inputs, (ClipInput, list, tuple)) and \
                not (isinstance(inputs, (str, Path)) and Path(inputs).is_dir()) and \
                not str(inputs).lower().endswith((".mp4", ".avi", ".mov", ".mkv", ".webm")):
            inputs = ClipInput([inputs])  # one frame
        past = self.model.config.past_frames if mode == "predict" else None
        at_least = {"landmarks": 1, "interpolate": 2, "predict": past}[mode]
        last = past
        frames = read_clip(inputs, at_least=at_least, last=last)
        size = model.config.image_size
        return {"frames": square_frames(torch.from_numpy(np.stack(frames)), size)}

    def _forward(self, model_inputs, mode="landmarks", gap=1, interpolation="linear", num_future_frames=1,
                 synthesis="decoder"):
        model = self.landmark_model()
        param = next(model.parameters())
        frames = model_inputs["frames"].to(param.device, param.dtype)
        if mode == "landmarks":
            pose = model.encode_pose(frames)
            return {"mu": pose.mu, "covariance": pose.covariance, "size": frames.shape[-1]}
        if mode == "interpolate":  # the given frames at every gap + 1, the interpolated ones between them
            keys = [i * (gap + 1) for i in range(len(frames))]
            queries = [q for q in range(keys[-1]) if q % (gap + 1)]
            between = interpolate_frames(model, frames[None], keys, queries, interpolation, synthesis)[0]
            out = torch.empty(keys[-1] + 1, *frames.shape[1:], dtype=between.dtype, device=between.device)
            out[keys], out[queries] = frames.to(between.dtype), between
            return {"frames": out}
        dynamics_param = next(self.model.parameters())
        predicted = self.model.to(dynamics_param.device).predict_frames(model, frames[None], num_future_frames,
                                                                        synthesis)
        return {"frames": predicted[0]}

    def postprocess(self, model_outputs, mode="landmarks"):
        from PIL import Image

        if mode == "landmarks":
            size = model_outputs["size"]
            return [{"mu": mu.tolist(), "covariance": cov.tolist(), "pixels": ((mu + 1) / 2 * size).tolist()}
                    for mu, cov in zip(model_outputs["mu"].float().cpu(), model_outputs["covariance"].float().cpu())]
        images = to_pixels(model_outputs["frames"]).clamp(0, 255).round().to(torch.uint8).cpu()
        return [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images]


def register_pipeline() -> None:
    """`pipeline("landmark-video")` is `LandmarkVideoPipeline` (registered once)."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(PIPELINE_TASK, pipeline_class=LandmarkVideoPipeline, pt_model=AutoModel,
                                            type="video")


__all__ = ["LandmarkVideoPipeline", "PIPELINE_TASK", "register_pipeline"]
