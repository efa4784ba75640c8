"""The base of the video pipelines (`video-frame-prediction`, `video-frame-interpolation`): one clip in (a list of
frames, a frame folder or a video file, read and checked by `adlr_hf.data.frame_inputs`), padded by the model
folder's video processor, and the model's frames out as PIL images cropped back to the clip's size; and how a video
family registers its processor and pipeline with transformers."""

from __future__ import annotations

import numpy as np
from transformers import Pipeline

from .data.frame_inputs import ClipInput

__all__ = ["VideoClipPipeline"]


class VideoClipPipeline(Pipeline):
    """Subclasses read the clip (`read_frames`) and run the model (`_forward`, returning {"frames": (B, N, 3, H, W),
    "original_sizes"}); this class turns a list into one clip, pads it and post-processes the frames."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = True

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, (list, tuple)):  # one clip, not a batch of inputs
            inputs = ClipInput(inputs)
        return super().__call__(inputs, **kwargs)

    def read_frames(self, inputs) -> list[np.ndarray]:
        """The clip's frames as (H, W, 3) uint8 arrays, checked for this model."""
        raise NotImplementedError

    def preprocess(self, inputs):
        if self.video_processor is None:
            raise ValueError("this model folder has no video processor (video_preprocessor_config.json); save the "
                             "model's processor beside it or pass video_processor=...")
        frames = self.read_frames(inputs)
        return self.video_processor([frames], return_tensors="pt", input_data_format="channels_last")

    def postprocess(self, model_outputs):
        return self.video_processor.post_process_frames(model_outputs["frames"], model_outputs["original_sizes"])[0]
