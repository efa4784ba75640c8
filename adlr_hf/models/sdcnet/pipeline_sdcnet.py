"""The `video-frame-prediction` pipeline (transformers' pipeline registry): the last frames of a clip in, the
predicted next frame(s) out as PIL images.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.

    predict = pipeline("video-frame-prediction", model="sdcnet-folder", trust_remote_code=True)
    predict("clip_folder/")                      # a folder of frames (natural name order), or
    predict("clip.mp4", num_future_frames=3)     # a video file, or
    predict([frame0, frame1, frame2])            # frames: PIL images, (H, W, 3) uint8 arrays or image paths

The model sees the clip's last `sequence_length` frames (padded by the video processor); with `num_future_frames`
> 1 it rolls out, feeding each prediction back. Every input is checked before the model runs.
"""

from __future__ import annotations

from ...data.frame_inputs import read_clip
from ...video_pipeline import VideoClipPipeline


class SDCNetFramePredictionPipeline(VideoClipPipeline):
    """`pipeline("video-frame-prediction")`: returns a list of `num_future_frames` PIL images (default 1)."""

    def _sanitize_parameters(self, num_future_frames=None, **kwargs):
        if kwargs:
            raise ValueError(f"unknown options {sorted(kwargs)}; video-frame-prediction takes num_future_frames")
        forward = {}
        if num_future_frames is not None:
            if isinstance(num_future_frames, bool) or not isinstance(num_future_frames, int) or num_future_frames < 1:
                raise ValueError(f"num_future_frames={num_future_frames!r} must be an integer >= 1")
            forward["num_future_frames"] = num_future_frames
        return {}, forward, {}

    def read_frames(self, inputs):
        if getattr(self.model.config, "reconstruction", False):
            raise ValueError(f"{type(self.model).__name__} reconstructs a frame it is given and cannot predict unseen "
                             "frames; use a prediction model")
        count = self.model.config.sequence_length
        return read_clip(inputs, at_least=count, last=count)

    def _forward(self, model_inputs, num_future_frames: int = 1):
        predicted = self.model.rollout(model_inputs["pixel_values_videos"], num_future_frames)
        return {"frames": predicted, "original_sizes": model_inputs["original_sizes"]}


__all__ = ["SDCNetFramePredictionPipeline"]
