"""A small CamVid tree cut from the real subset (a few images at 1/4 size, labels resized with nearest
neighbours) and the `adlr-hf train` flags of a short segmentation run on it."""

from pathlib import Path

from PIL import Image

from models.deeplabv3plus.seg_data_utils import camvid_root


def write_small_camvid(root: Path, train: int = 8, val: int = 4, size=(120, 90)) -> Path:
    source = camvid_root()
    for split, count in (("train", train), ("val", val)):
        names = sorted(p.name for p in (source / split).iterdir() if p.suffix == ".png")[:count]
        for folder, resample in ((split, Image.BICUBIC), (f"{split}annot", Image.NEAREST)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            for name in names:
                Image.open(source / folder / name).resize(size, resample).save(root / folder / name)
    return root


def seg_flags(data: Path, out: Path, steps: int = 3, **extra) -> list[str]:
    argv = ["--model", "deeplabv3plus-tiny", "--data", str(data), "--dataset", "camvid", "--steps", str(steps),
            "--crop-size", "48", "--micro-batch-size", "2", "--lr", "1e-2", "--seed", "7", "--out", str(out),
            "--no-progress"]  # weight decay: the task's default (1e-4)
    for key, value in extra.items():
        flag = f"--{key.replace('_', '-')}"
        argv += [flag] if value is True else [flag, str(value)]
    return argv
