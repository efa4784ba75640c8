"""Classical optical flow from OpenCV (DIS or Farneback): real flows on a CPU, with no downloaded weights.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/models/sdc_net2d.py` (FlowNet2 on (I_{i+1}, I_i)).
Deviation from the reference: OpenCV's DIS (Kroeger et al. 2016) or Farneback (2003) flow on grayscale frames replaces
FlowNet2 (a 620 MB checkpoint and CUDA extensions that no longer build); recompute the normalisation statistics
(`flow_statistics`) for it.

`cv2.calcOpticalFlow*(prev, next)` returns f with prev(x) ≈ next(x + f(x)), the convention of `FlowSource`, so
`source(first, second)` passes `first` as OpenCV's prev. Needs `opencv-python-headless`.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import FlowSource

__all__ = ["OPENCV_METHODS", "OpenCVFlow", "import_cv2"]

OPENCV_METHODS = ("dis", "farneback")
_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*
# cv2.calcOpticalFlowFarneback's usual settings: pyramid scale 0.5, 3 levels, 15 px window, 3 iterations,
# polynomial neighbourhood 5 with sigma 1.2
_FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2}


def import_cv2():
    """The cv2 module, or one clear error saying how to install it."""
    try:
        import cv2
    except ImportError:
        raise ImportError("flow sources 'opencv-dis' and 'opencv-farneback' need OpenCV: "
                          "pip install opencv-python-headless") from None
    return cv2


class OpenCVFlow(FlowSource):
    """flow_source "opencv-dis" (DIS, preset "ultrafast" | "fast" | "medium") or "opencv-farneback". Runs on the CPU
    per frame pair (frames on a GPU are copied over) on grayscale uint8 versions of the RGB frames."""

    def __init__(self, method: str = "dis", *, preset: str = "medium", **farneback):
        if method not in OPENCV_METHODS:
            raise ValueError(f"method={method!r} is not one of {OPENCV_METHODS}")
        if preset not in _DIS_PRESETS:
            raise ValueError(f"preset={preset!r} is not one of {sorted(_DIS_PRESETS)}")
        unknown = sorted(set(farneback) - set(_FARNEBACK))
        if unknown or (farneback and method != "farneback"):
            raise ValueError(f"unknown options {unknown or sorted(farneback)} for opencv-{method}; Farneback takes "
                             f"{sorted(_FARNEBACK)}")
        import_cv2()  # fail at construction, before any data is read
        self.method, self.preset = method, preset
        self.farneback = {**_FARNEBACK, **farneback}
        self.name = f"opencv-{method}"
        self._dis = None

    def __getstate__(self):  # OpenCV objects do not pickle (DataLoader workers); rebuilt on first use
        state = dict(self.__dict__)
        state["_dis"] = None
        return state

    def _gray(self, frames: torch.Tensor) -> list[np.ndarray]:
        cv2 = import_cv2()
        rgb = frames.detach().round().clamp(0, 255).to("cpu", torch.uint8).permute(0, 2, 3, 1).numpy()
        return [cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY) for image in rgb]

    def compute(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        cv2 = import_cv2()
        flows = []
        for prev, nxt in zip(self._gray(first), self._gray(second)):
            if self.method == "dis":
                if self._dis is None:
                    self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
                flow = self._dis.calc(prev, nxt, None)
            else:
                f = self.farneback
                flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, f["pyr_scale"], f["levels"], f["winsize"],
                                                    f["iterations"], f["poly_n"], f["poly_sigma"], 0)
            flows.append(torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).permute(2, 0, 1))
        return torch.stack(flows)
