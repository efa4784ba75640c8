"""Baselines from the other video families for the landmark evaluations (Shih et al., arXiv 1909.02749, compare
landmark-space interpolation and prediction with flow-based models): a trained frame-interpolation model
(`--interpolation-model DIR`, any model the `video-interpolation` task trains, e.g. Super SloMo) and a trained
next-frame model (`--prediction-model DIR`, any model the `next-frame` task trains, e.g. SDC-Net), scored on the same
frames as the landmark model.

The folders are read through transformers' Auto classes (`AutoModel` and the `AutoVideoProcessor` saved beside the
model), and recognised by the shared task that trains them, so this family never imports another. The landmark
evaluation's frames (image_size², [0, 255] floats) are padded by the model's own processor to its size divisor and
the outputs cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

INTERPOLATION, PREDICTION = "interpolation", "prediction"
_TRAINED_BY = {INTERPOLATION: "video-interpolation", PREDICTION: "next-frame"}
_WHAT = {INTERPOLATION: "a frame-interpolation model", PREDICTION: "a next-frame prediction model"}
_EXAMPLES = {INTERPOLATION: "a frame-interpolation model folder (e.g. a `--task video-interpolation` run's model/ "
                            "or a converted cyclic-interp model)",
             PREDICTION: "a next-frame prediction model folder (e.g. a `--task next-frame` run's model/ or a "
                         "converted SDC-Net SDCNet2D)"}


def check_baseline_folder(folder, kind: str):
    """(model folder, config) of a baseline model for `kind` ("interpolation" | "prediction"); anything else is one
    clear error naming the folder and what to pass. Reads only the config: nothing is loaded yet."""
    from ...evaluation.loading import read_config, video_model_folder
    from ...tasks import get_task

    option = f"--{kind}-model"
    given = Path(folder).expanduser()
    path = next((p for p in (given, given / "model") if (p / "config.json").is_file()), None)  # or a run's model/
    if path is None:
        raise FileNotFoundError(f"{option} {str(folder)!r} has no config.json (nor model/config.json); pass "
                                f"{_EXAMPLES[kind]}")
    config = read_config(str(path))
    if not get_task(_TRAINED_BY[kind]).fits(config):
        raise ValueError(f"{option} {str(folder)!r} holds a {config.model_type!r} model, not {_WHAT[kind]} of the "
                         f"video families; pass {_EXAMPLES[kind]}")
    try:
        path = video_model_folder(path)  # its video processor must be saved beside it
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{option} {str(folder)!r}: {err}") from None
    if kind == PREDICTION:
        if getattr(config, "reconstruction", False):
            raise ValueError(f"{option} {str(folder)!r} is a reconstruction model (it reads the frame it predicts); "
                             f"pass {_EXAMPLES[kind]}")
        if getattr(config, "flow_source", None) == "precomputed":
            raise ValueError(f"{option} {str(folder)!r} has flow_source 'precomputed', but the roll-out computes "
                             "flows from the frames it predicts; save it with flow_source opencv-dis (or raft-*)")
        from ...tasks.next_frame import check_flow_source

        check_flow_source(config)  # a missing flow dependency or weights file fails before any scoring
    return path, config


@dataclass
class BaselineModel:
    """A loaded baseline: the model, its video processor, and where it came from."""

    model: torch.nn.Module
    processor: object
    folder: str

    @classmethod
    def load(cls, folder, kind: str, device=None) -> "BaselineModel":
        from ...evaluation.loading import load_video_model

        path, _ = check_baseline_folder(folder, kind)
        with torch.random.fork_rng(devices=[]):  # loading does not move any seeded stream
            model, processor = load_video_model(path, 1, device or "cpu")
        return cls(model.eval().requires_grad_(False), processor, path)

    @property
    def context_frames(self) -> int:
        """Past frames a prediction model reads (its `sequence_length`)."""
        return int(self.model.config.sequence_length)

    @property
    def settings(self) -> dict:
        return {"folder": self.folder, "model_type": self.model.config.model_type,
                "size_divisor": self.processor.size_divisor}

    def _padded(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips (B, T, 3, h, w) in [0, 255] -> padded by the processor, on the model's scale, device and dtype."""
        batch = self.processor([list(clip) for clip in clips.float().cpu()], return_tensors="pt")
        param = next(self.model.parameters())
        scale = float(getattr(self.model.config, "rgb_max", 255.0)) / 255.0
        return (batch["pixel_values_videos"] * scale).to(param.device, param.dtype)

    def _unscaled(self, frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        scale = float(getattr(self.model.config, "rgb_max", 255.0)) / 255.0
        return frames[..., :size[0], :size[1]].float().cpu() / scale

    @torch.no_grad()
    def interpolate(self, first: torch.Tensor, last: torch.Tensor, times: list[float],
                    batch_size: int = 8) -> torch.Tensor:
        """(P, N, 3, h, w) in [0, 255]: the frames at `times` between each pair first[i], last[i] ((P, 3, h, w) in
        [0, 255])."""
        pairs, out = torch.stack((first, last), 1), []
        for start in range(0, len(pairs), batch_size):
            inputs = self._padded(pairs[start:start + batch_size])
            out.append(self._unscaled(self.model.interpolate(inputs, timesteps=times), first.shape[-2:]))
        return torch.cat(out)

    @torch.no_grad()
    def roll_out(self, past: torch.Tensor, horizon: int, batch_size: int = 8) -> torch.Tensor:
        """(B, horizon, 3, h, w) in [0, 255]: the model's autoregressive roll-out (its predictions fed back, flows
        from its configured source) from the last `context_frames` of `past` ((B, T, 3, h, w) in [0, 255])."""
        past, out = past[:, -self.context_frames:], []
        for start in range(0, len(past), batch_size):
            inputs = self._padded(past[start:start + batch_size])
            out.append(self._unscaled(self.model.rollout(inputs, horizon), past.shape[-2:]))
        return torch.cat(out)


__all__ = ["BaselineModel", "INTERPOLATION", "PREDICTION", "check_baseline_folder"]
