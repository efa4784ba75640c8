"""What the video families' training tests share: small clips cut from the real frames of ../shared/data, the
`adlr-hf train` flags of a short run on them, and the worker that trains through the CLI."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VIDEO_FRAMES = SHARED_DATA / "video-frames"


def write_small_clips(root: Path) -> Path:
    """The first 10 frames of both real clips at 1/4 size (240×135 and 240×127), one folder each under `root`."""
    for clip in ("sam2-bedroom", "adacof-sample-video"):
        (root / clip).mkdir()
        for path in sorted(p for p in (VIDEO_FRAMES / clip).iterdir() if p.suffix in (".jpg", ".png"))[:10]:
            image = Image.open(path).convert("RGB")
            image.resize((240, round(image.height * 240 / image.width)), Image.BILINEAR).save(
                root / clip / f"{path.stem}.png")
    return root


def train_flags(model: str, data: Path, out: Path, steps: int, crop_size: int, **extra) -> list[str]:
    """A short run: batches of 2, the last 30% of each clip held out, seed 7. `extra` adds flags (True: a switch)."""
    argv = ["--model", model, "--data", str(data), "--steps", str(steps), "--crop-size", str(crop_size),
            "--micro-batch-size", "2", "--eval-fraction", "0.3", "--lr", "1e-3", "--seed", "7", "--out", str(out),
            "--no-progress"]
    for key, value in extra.items():
        flag = f"--{key.replace('_', '-')}"
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def cli_train(rank, argv):
    """Worker: `adlr-hf train ARGV`."""
    from adlr_hf.cli import main

    assert main(["train", *argv]) == 0
