"""Extra segmentation training pairs by video propagation (Zhu et al., arXiv 1812.01593 §3; reference
NVIDIA/semantic-segmentation branch `sdcnet`, `sdcnet/sdc_aug.py`): `adlr-hf propagate SDC_MODEL --data DIR --out DIR
--steps K [--mode jp|lp]`.

An SDC-Net reconstruction model (`SDCNet2DRecon`) reads real frames around a labelled frame t and gives the motion
from frame t+k-1 to t+k; that motion warps the label map with nearest sampling (every propagated label is one of the
original's) and the image bilinearly, step after step (`SDCNetForFramePrediction.propagate_labels`), forward to
t+1..t+K and, on the reversed sequence, backward to t-1..t-K.
- `jp` (joint propagation, the paper's better choice): the propagated label with the synthesised image;
- `lp` (label propagation): the propagated label with the real frame t±k.

Input (`--data DIR`, `--layout folder`):

    images/<stem>.<ext>      the labelled frames
    labels/<stem>.png        their class ids (255 = ignore)
    sequences/<stem>/*       the video frames around each labelled frame, ordered by file name; the one named like
                             images/<stem>.<ext> is frame t (Cityscapes' leftImg8bit_sequence names work as they are)
    classes.txt              optional, copied

or a Cityscapes root (`--layout cityscapes`, `--split S`, default train; the reference's `sdc_aug.py` input):

    leftImg8bit/S/<city>/<city>_<seq>_<n>_leftImg8bit.png            the labelled frames (frame t, number n)
    gtFine/S/<city>/<city>_<seq>_<n>_gtFine_labelIds.png              labelIds, mapped to the 19 trainIds (others: 255)
    leftImg8bit_sequence/S/<city>/<city>_<seq>_<m:06d>_leftImg8bit.png  the 30-frame snippet, m = n-19 .. n+10

`--layout auto` (the default) picks cityscapes when DIR has leftImg8bit/ (or leftImg8bit_trainvaltest/leftImg8bit/),
else folder. The output stems of Cityscapes frames are `<city>_<seq>_<n>`, and classes.txt lists its 19 classes.

Output (`--out DIR`, the "folder" layout the segmentation data loader reads, written atomically):

    images/<stem>_fwd<k>.png, labels/<stem>_fwd<k>.png     frame t+k, k = 1..K
    images/<stem>_bwd<k>.png, labels/<stem>_bwd<k>.png     frame t-k
    classes.txt

Every labelled frame needs max(K, sequence_length - 1) real frames on each side (K ahead of each direction, the
model's context behind it); everything (the model, the layout, the sizes) is checked before anything is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import write_atomically
from ..conversion import check_out_dir
from .segmentation.layouts import CITYSCAPES_CLASSES
from .segmentation.reading import read_label

MODES = ("jp", "lp")
LAYOUTS = ("auto", "folder", "cityscapes")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")
# Cityscapes' leftImg8bit_sequence snippet around a labelled frame n: frames n-19 .. n+10.
CITYSCAPES_SNIPPET = (19, 10)


@dataclass(frozen=True)
class LabelledClip:
    """One labelled frame: its label file and the ordered frames of its sequence, `index` being frame t."""

    stem: str
    label: Path
    frames: tuple[Path, ...]
    index: int
    lookup: np.ndarray | None = field(default=None, compare=False)  # stored label value -> class id (Cityscapes)


def load_reconstruction_model(path):
    """The SDC-Net reconstruction model saved at `path`, in eval mode; an error naming the fix for any other model.
    Read through the Auto classes: a reconstruction model is one whose config has `reconstruction` set and that
    loads as `SDCNet2DRecon` (the model with `propagate_labels`)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path)
    if not getattr(config, "reconstruction", False):
        kind = type(config).__name__ + (" with reconstruction=False" if hasattr(config, "reconstruction") else "")
        raise ValueError(f"{str(path)!r} holds a {kind} model, not an SDC-Net reconstruction model: propagation "
                         "needs SDCNet2DRecon (e.g. `adlr-hf convert sdcnet` of sdc_cityscapes_vrec.pth.tar, or a "
                         "model trained from the sdcnet2d-recon variant)")
    model = AutoModel.from_pretrained(path)
    if type(model).__name__ != "SDCNet2DRecon" or not hasattr(model, "propagate_labels"):
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


def detect_layout(root) -> str:
    """`cityscapes` when `root` holds Cityscapes' leftImg8bit/ folder, else `folder`."""
    from .segmentation.layouts import _cityscapes_dir

    return "cityscapes" if _cityscapes_dir(Path(root), "leftImg8bit") is not None else "folder"


def find_cityscapes_clips(root, split: str, steps: int, context: int) -> list[LabelledClip]:
    """The labelled frames of `split` under the Cityscapes root `root`, each with the leftImg8bit_sequence frames
    n-need .. n+need around its number n (need = max(`steps`, `context`)); frame t is the leftImg8bit image itself.
    One clear error, naming the file, for the first missing sequence frame."""
    from .segmentation.layouts import _cityscapes_dir, cityscapes_lookup, cityscapes_pairs

    root = Path(root)
    pairs = cityscapes_pairs(root, split)  # labelled frames with their gtFine labelIds (or a named error)
    if not len(pairs):
        raise ValueError(f"{str(root)!r} holds no leftImg8bit/{split}/ images")
    sequence_root = _cityscapes_dir(root, "leftImg8bit_sequence")
    if sequence_root is None:
        raise FileNotFoundError(f"--data {str(root)!r} has no leftImg8bit_sequence/ folder: Cityscapes "
                                "propagation reads the video snippets around each labelled frame (the "
                                "leftImg8bit_sequence_trainvaltest download)")
    need = max(steps, context)  # each direction: `steps` frames ahead, `context` behind
    lookup, clips = cityscapes_lookup(), []
    for image, label in zip(pairs.images, pairs.labels):
        image = Path(image)
        stem = image.name[: -len("_leftImg8bit.png")]
        city_seq, _, number = stem.rpartition("_")
        if not number.isdigit() or not city_seq:
            raise ValueError(f"{str(image)!r} is not named <city>_<seq>_<frame>_leftImg8bit.png")
        n = int(number)
        folder = sequence_root / split / image.parent.name
        frames = [image if m == n else folder / f"{city_seq}_{m:06d}_leftImg8bit.png"
                  for m in range(n - need, n + need + 1)]
        missing = [frame for frame in frames if not frame.is_file()]
        if missing:
            before, after = CITYSCAPES_SNIPPET
            raise FileNotFoundError(
                f"{str(missing[0])!r} is missing ({len(missing)} of the frames {n - need:06d}..{n + need:06d} "
                f"around labelled frame {stem}): --steps {steps} with a model reading {context + 1} frames needs "
                f"{need} sequence frames on each side (Cityscapes' snippets hold {before} before and {after} after); "
                "add leftImg8bit_sequence for this split or lower --steps")
        clips.append(LabelledClip(stem, Path(label), tuple(frames), need, lookup))
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
    label = _read_label(clip.label) if clip.lookup is None else read_label(str(clip.label), clip.lookup)
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
                      device: str | None = None, layout: str = "auto", split: str = "train") -> Path:
    """Write the propagated (image, label) pairs of every labelled frame under `data` to `out`; returns `out`.
    `device`: where the model runs (default: the first GPU if there is one, else the CPU); `layout`: one of
    LAYOUTS (see the module docstring); `split`: the Cityscapes split read."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"--steps {steps!r} must be an integer >= 1")
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r} is not one of {MODES} (jp: synthesised images, lp: real frames)")
    if layout not in LAYOUTS:
        raise ValueError(f"--layout {layout!r} is not one of {LAYOUTS}")
    from ..registry import family_for

    data = Path(data)
    out = check_out_dir(out, data, overwrite)
    model = load_reconstruction_model(model_path)
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    processor = family_for(model.config).processor(model.config)  # the family's video processor
    if layout == "auto":
        layout = detect_layout(data)
    context = model.config.sequence_length - 1
    if layout == "cityscapes":
        clips, class_names = find_cityscapes_clips(data, split, steps, context), CITYSCAPES_CLASSES
    else:
        clips, class_names = find_labelled_clips(data, steps, context), None

    def build(tmp: Path) -> None:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for clip in clips:
            for direction, reverse in (("fwd", False), ("bwd", True)):
                pairs = propagate_clip(model, processor, clip, steps, mode, reverse)
                for k, (image, label) in enumerate(pairs, start=1):
                    Image.fromarray(image).save(tmp / "images" / f"{clip.stem}_{direction}{k}.png")
                    Image.fromarray(label).save(tmp / "labels" / f"{clip.stem}_{direction}{k}.png")
        if class_names is not None:
            (tmp / "classes.txt").write_text("".join(f"{name}\n" for name in class_names))
        elif (data / "classes.txt").is_file():
            shutil.copy2(data / "classes.txt", tmp / "classes.txt")

    write_atomically(out, build)
    return out


__all__ = ["CITYSCAPES_SNIPPET", "LAYOUTS", "LabelledClip", "MODES", "detect_layout", "find_cityscapes_clips",
           "find_labelled_clips", "load_reconstruction_model", "propagate_clip",
           "propagate_dataset"]
