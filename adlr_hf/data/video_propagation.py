"""Extra segmentation training pairs by video propagation (Zhu et al., arXiv 1812.01593 §3; reference
NVIDIA/semantic-segmentation branch `sdcnet`, `sdcnet/sdc_aug.py`): `adlr-hf propagate SDC_MODEL --data DIR --out DIR
--steps K [--mode jp|lp]`.

An SDC-Net reconstruction model (`SDCNet2DRecon`) reads real frames around a labelled frame t and gives the motion
from frame t+k-1 to t+k; that motion warps the label map with nearest sampling (every propagated label is one of the
original's) and the image bilinearly, step after step (`SDCNetForFramePrediction.propagate_labels`), forward to
t+1..t+K and, on the reversed sequence, backward to t-1..t-K.
- `jp` (joint propagation, the paper's better choice): the propagated label with the synthesised image;
- `lp` (label propagation): the propagated label with the real frame t±k.

Input (`--data DIR`):

    images/<stem>.<ext>      the labelled frames
    labels/<stem>.png        their class ids (255 = ignore)
    sequences/<stem>/*       the video frames around each labelled frame, ordered by file name; the one named like
                             images/<stem>.<ext> is frame t (Cityscapes' leftImg8bit_sequence names work as they are)
    classes.txt              optional, copied

Output (`--out DIR`, the "folder" layout the segmentation data loader reads, written atomically):

    images/<stem>_fwd<k>.png, labels/<stem>_fwd<k>.png     frame t+k, k = 1..K
    images/<stem>_bwd<k>.png, labels/<stem>_bwd<k>.png     frame t-k
    classes.txt

Every labelled frame needs max(K, sequence_length - 1) real frames on each side (K ahead of each direction, the
model's context behind it); everything (the model, the layout, the sizes) is checked before anything is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import write_atomically
from ..conversion import check_out_dir

MODES = ("jp", "lp")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


@dataclass(frozen=True)
class LabelledClip:
    """One labelled frame: its label file and the ordered frames of its sequence, `index` being frame t."""

    stem: str
    label: Path
    frames: tuple[Path, ...]
    index: int


def load_reconstruction_model(path):
    """The SDC-Net reconstruction model saved at `path`, in eval mode; an error naming the fix for any other model."""
    from transformers import AutoConfig, AutoModel

    from ..models.sdcnet import SDCNet2DRecon, SDCNetConfig

    config = AutoConfig.from_pretrained(path)
    if not isinstance(config, SDCNetConfig) or not config.reconstruction:
        kind = type(config).__name__ + ("" if not isinstance(config, SDCNetConfig) else " with reconstruction=False")
        raise ValueError(f"{str(path)!r} holds a {kind} model, not an SDC-Net reconstruction model: propagation "
                         "needs SDCNet2DRecon (e.g. `adlr-hf convert sdcnet` of sdc_cityscapes_vrec.pth.tar, or a "
                         "model trained from the sdcnet2d-recon variant)")
    model = AutoModel.from_pretrained(path)
    if not isinstance(model, SDCNet2DRecon):
        raise ValueError(f"{str(path)!r} loads as {type(model).__name__}, not SDCNet2DRecon; check its "
                         "config's architectures")
    return model.eval()


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_labelled_clips(root, steps: int, context: int) -> list[LabelledClip]:
    """The labelled frames under `root`, each with max(`steps`, `context`) frames on both sides (see the module
    docstring); one clear error for the first bad clip."""
    root = Path(root)
    for name in ("images", "labels", "sequences"):
        if not (root / name).is_dir():
            raise FileNotFoundError(f"--data {str(root)!r} has no {name}/ folder; expected images/, labels/ and "
                                    "sequences/<stem>/ (see `adlr-hf propagate --help`)")
    images = _images_in(root / "images")
    if not images:
        raise ValueError(f"{str(root / 'images')!r} holds no images")
    clips = []
    for image in images:
        label, folder = root / "labels" / f"{image.stem}.png", root / "sequences" / image.stem
        if not label.is_file():
            raise FileNotFoundError(f"{str(label)!r} is missing: every labelled frame needs its label map")
        if not folder.is_dir():
            raise FileNotFoundError(f"{str(folder)!r} is missing: every labelled frame needs its video frames")
        frames = _images_in(folder)
        names = [f.name for f in frames]
        if image.name not in names:
            raise ValueError(f"{str(folder)!r} has no frame named {image.name!r} (the labelled frame t)")
        index = names.index(image.name)
        before, after = index, len(frames) - 1 - index
        need = max(steps, context)  # each direction: `steps` frames ahead, `context` behind
        if before < need or after < need:
            raise ValueError(f"{image.stem}: {before} frames before and {after} after the labelled frame; --steps "
                             f"{steps} with a model reading {context + 1} frames needs {need} on each side")
        clips.append(LabelledClip(image.stem, label, tuple(frames), index))
    return clips


def _read_rgb(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32).copy()).permute(2, 0, 1)


def _read_label(path: Path) -> torch.Tensor:
    array = np.asarray(Image.open(path))
    if array.ndim != 2:
        raise ValueError(f"{str(path)!r} is not a single-channel label map (shape {array.shape}); store class ids "
                         "as an 8-bit grey PNG")
    return torch.from_numpy(array.astype(np.int64))


@torch.no_grad()
def propagate_clip(model, processor, clip: LabelledClip, steps: int, mode: str, reverse: bool):
    """[(image uint8 (H, W, 3), label uint8 (H, W)), ...] for frames t±1 .. t±steps."""
    frames = list(clip.frames[::-1] if reverse else clip.frames)
    t = len(frames) - 1 - clip.index if reverse else clip.index
    context = model.config.sequence_length
    past = torch.stack([_read_rgb(p) for p in frames[t - context + 1:t + 1]])
    future = torch.stack([_read_rgb(p) for p in frames[t + 1:t + 1 + steps]])
    label = _read_label(clip.label)
    height, width = past.shape[-2:]
    if tuple(future.shape[-2:]) != (height, width) or tuple(label.shape) != (height, width):
        raise ValueError(f"{clip.stem}: frames and label map differ in size ({height}x{width} frames, "
                         f"{tuple(label.shape)} label); they must match")
    divisor = processor.size_divisor
    padded = (-(-height // divisor) * divisor, -(-width // divisor) * divisor)
    parameter = next(model.parameters())
    as_input = dict(dtype=parameter.dtype, device=parameter.device)
    synthesised, labels = model.propagate_labels(
        processor.pad_clip(past, *padded)[None].to(**as_input),
        processor.pad_clip(label[None].double(), *padded).round().long().to(parameter.device),
        num_steps=steps, future_frames=processor.pad_clip(future, *padded)[None].to(**as_input))
    images = synthesised[0, :, :, :height, :width].cpu() if mode == "jp" else future
    images = images.float().round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    labels = labels[0, :, :height, :width].clamp(0, 255).to(torch.uint8).cpu().numpy()
    return list(zip(images, labels))


def propagate_dataset(model_path, data, out, steps: int, mode: str = "jp", overwrite: bool = False,
                      device: str | None = None) -> Path:
    """Write the propagated (image, label) pairs of every labelled frame under `data` to `out`; returns `out`.
    `device`: where the model runs (default: the first GPU if there is one, else the CPU)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"--steps {steps!r} must be an integer >= 1")
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r} is not one of {MODES} (jp: synthesised images, lp: real frames)")
    from ..models.sdcnet import SDCNetVideoProcessor

    data = Path(data)
    out = check_out_dir(out, data, overwrite)
    model = load_reconstruction_model(model_path)
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    processor = SDCNetVideoProcessor.for_config(model.config)
    clips = find_labelled_clips(data, steps, model.config.sequence_length - 1)

    def build(tmp: Path) -> None:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for clip in clips:
            for direction, reverse in (("fwd", False), ("bwd", True)):
                pairs = propagate_clip(model, processor, clip, steps, mode, reverse)
                for k, (image, label) in enumerate(pairs, start=1):
                    Image.fromarray(image).save(tmp / "images" / f"{clip.stem}_{direction}{k}.png")
                    Image.fromarray(label).save(tmp / "labels" / f"{clip.stem}_{direction}{k}.png")
        if (data / "classes.txt").is_file():
            shutil.copy2(data / "classes.txt", tmp / "classes.txt")

    write_atomically(out, build)
    return out


__all__ = ["LabelledClip", "MODES", "find_labelled_clips", "load_reconstruction_model", "propagate_clip",
           "propagate_dataset"]
