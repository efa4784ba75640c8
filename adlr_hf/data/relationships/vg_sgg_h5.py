"""Visual Genome's VG-150 release in the scene-graph benchmark layout (neural-motifs, Scene-Graph-Benchmark):
`VG-SGG.h5` (or `VG-SGG-with-attri.h5`) + `VG-SGG-dicts.json` + `image_data.json`.

The h5 file holds every image's entities and relations in flat arrays, image i owning the rows
`img_to_first_box[i]..img_to_last_box[i]` and `img_to_first_rel[i]..img_to_last_rel[i]` (inclusive; -1 when the
image has none). `labels` and `predicates` are [n, 1] and 1-based (0 is the background of `label_to_idx` /
`predicate_to_idx`); `relationships` are [r, 2] global box rows (subject, object); `boxes_1024` are
(cx, cy, w, h) in a frame whose longer side is 1024 pixels. A box becomes xyxy [cx - w/2, cy - h/2, cx + w/2,
cy + h/2], rescaled by max(width, height) / 1024 of the image's size in image_data.json and clipped to the image
(the 1024-frame integers can overshoot the border by a pixel, which the benchmark also clips).

Splits: `split` is 0 for train and 2 for test; images without a box (img_to_first_box == -1) or without a relation
are left out (counted in `RelationshipData.empty_images`). As the benchmark does, `val` is the first 5,000 of the
remaining train images and `train` the rest. image_data.json lists the images in the h5 order; the release's
image_data.json also lists four corrupted images the h5 leaves out (1592, 1722, 4616, 4617), dropped here when the
counts differ. A relation naming a box beyond its image's rows, or a class or predicate beyond the vocabulary, goes
to the --on-bad-sample policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..bad_samples import BadSamples
from .records import RelationshipData, finish

H5_NAMES = ("VG-SGG.h5", "VG-SGG-with-attri.h5")
SPLITS = ("train", "val", "test")
VAL_IMAGES = 5000
BOX_SCALE = 1024
CORRUPTED_IMAGES = {1592, 1722, 4616, 4617}


def find_h5(folder) -> Path | None:
    """The VG-150 h5 file of `folder`, or None."""
    return next((Path(folder) / n for n in H5_NAMES if (Path(folder) / n).is_file()), None)


def _vocabulary(dicts: Path) -> tuple[list[str], list[str]]:
    if not dicts.is_file():
        raise FileNotFoundError(f"{dicts.parent} has a VG-SGG h5 file but no VG-SGG-dicts.json (its vocabulary)")
    data = json.loads(dicts.read_text())
    try:
        return (sorted(data["label_to_idx"], key=data["label_to_idx"].get),
                sorted(data["predicate_to_idx"], key=data["predicate_to_idx"].get))
    except KeyError as err:
        raise ValueError(f"{dicts} has no {err}; expected label_to_idx and predicate_to_idx") from err


def _image_data(path: Path, count: int) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} has a VG-SGG h5 file but no image_data.json (the image ids and sizes)")
    images = json.loads(path.read_text())
    if len(images) != count:
        images = [m for m in images if int(m["image_id"]) not in CORRUPTED_IMAGES]
    if len(images) != count:
        raise ValueError(f"{path} lists {len(images)} images (without the four corrupted ones) but the h5 file holds "
                         f"{count}; pass the image_data.json released with it")
    return images


def split_indices(split_flags, first_box, first_rel, split: str, val_images: int = VAL_IMAGES):
    """Indices of the h5 images of `split`, and how many images of the split's partition were left out for having
    no box or no relation."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS} of the VG-SGG h5 file")
    in_partition = np.asarray(split_flags) == (2 if split == "test" else 0)
    usable = in_partition & (np.asarray(first_box) >= 0) & (np.asarray(first_rel) >= 0)
    index = np.flatnonzero(usable)
    if split == "val":
        index = index[:val_images]
    elif split == "train":
        index = index[val_images:]
    return index, int(in_partition.sum() - usable.sum())


def load_vg_sgg_h5(folder, split: str, bad: BadSamples | None = None, val_images: int = VAL_IMAGES
                   ) -> RelationshipData:
    import h5py

    folder = Path(folder)
    path = find_h5(folder)
    if path is None:
        raise FileNotFoundError(f"{folder} has none of {H5_NAMES}")
    objects, predicates = _vocabulary(folder / "VG-SGG-dicts.json")
    with h5py.File(path, "r") as h5:
        flags = h5["split"][:]
        first_box, last_box = h5["img_to_first_box"][:], h5["img_to_last_box"][:]
        first_rel, last_rel = h5["img_to_first_rel"][:], h5["img_to_last_rel"][:]
        labels = h5["labels"][:].reshape(-1)
        boxes = h5[f"boxes_{BOX_SCALE}"][:].reshape(-1, 4).astype(np.float64)
        pairs = h5["relationships"][:].reshape(-1, 2)
        predicate_ids = h5["predicates"][:].reshape(-1)
    images = _image_data(folder / "image_data.json", len(flags))
    index, empty = split_indices(flags, first_box, first_rel, split, val_images)
    corners = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
    records = []
    for i in index:
        info = images[i]
        width, height = int(info["width"]), int(info["height"])
        b0, b1 = int(first_box[i]), int(last_box[i]) + 1
        image_boxes = corners[b0:b1] * (max(width, height) / BOX_SCALE)
        image_boxes = np.clip(image_boxes, 0, [width, height, width, height])
        rows = pairs[int(first_rel[i]):int(last_rel[i]) + 1] - b0  # global box rows -> the image's entity indices
        relations = []
        for (s, o), p in zip(rows.tolist(), predicate_ids[int(first_rel[i]):int(last_rel[i]) + 1].tolist()):
            triplet = [int(s), int(o), int(p) - 1]
            if triplet not in relations:
                relations.append(triplet)
        records.append(dict(file_name=f"{int(info['image_id'])}.jpg", height=height, width=width,
                            size_from="annotation", boxes=image_boxes.tolist(),
                            box_labels=[int(v) - 1 for v in labels[b0:b1]], relations=relations))
    data = finish(records, objects, predicates, "vg", bad or BadSamples("error"), f"{path} ({split})")
    data.empty_images += empty
    return data
