"""Real face clips for the landmark tests (../shared/data/face-video, the first frames of each clip as 64×64 PNG
folders) and one tiny landmark-dynamics run on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from models.video_utils import SHARED_DATA

FACES = SHARED_DATA / "face-video" / "fomm-driving-frames"
MISSING = f"real face frames not found at {FACES} (../shared/data of the checkout is absent)"


def write_face_clips(folder: Path, clips=("04", "08"), frames: int = 8, size: int = 64) -> Path:
    """`folder/<clip>/000.png ...`: the first `frames` frames of each clip, resized to size × size."""
    for clip in clips:
        (folder / clip).mkdir(parents=True)
        for i in range(frames):
            Image.open(FACES / clip / f"{i:03d}.png").convert("RGB").resize((size, size), Image.BILINEAR).save(
                folder / clip / f"{i:03d}.png")
    return folder


def tiny_dynamics_run(root: Path) -> Path:
    """root/clips (two clips, 8 frames), root/landmarks (a tiny landmark model, seed 0) and root/run: 2 steps of
    landmark-dynamics (past 2, future 2) with a checkpoint at step 2, in a fresh process."""
    from transformers import AutoModel

    from adlr_hf import get_config

    write_face_clips(root / "clips")
    torch.manual_seed(0)
    AutoModel.from_config(get_config("landmark-video-tiny")).save_pretrained(root / "landmarks")
    cmd = [sys.executable, "-m", "adlr_hf.train", "--model", "landmark-dynamics-tiny", "--task", "landmark-dynamics",
           "--init-from", str(root / "landmarks"), "--data", str(root / "clips"), "--past-frames", "2",
           "--future-frames", "2", "--steps", "2", "--save-every", "2", "--micro-batch-size", "2",
           "--eval-fraction", "0.3", "--seed", "7", "--out", str(root / "run"), "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def untrained_dynamics_folder(folder: Path, **dynamics_options):
    """folder: an untrained tiny dynamics model (hidden size 8) carrying a tiny landmark model (seed 0) in
    landmark_model/, as a landmark-dynamics export lays them out; returns the landmark model."""
    from transformers import AutoModel

    from adlr_hf import LandmarkDynamicsConfig, LandmarkDynamicsModel, get_config

    torch.manual_seed(0)
    landmarks = AutoModel.from_config(get_config("landmark-video-tiny"))
    LandmarkDynamicsModel(LandmarkDynamicsConfig(landmark_config=landmarks.config, hidden_size=8,
                                                 **dynamics_options)).save_pretrained(folder)
    landmarks.save_pretrained(folder / "landmark_model")
    return landmarks
