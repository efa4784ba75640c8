"""Where the (image, label map) pairs of a segmentation dataset are, and how its label ids become class ids.

Every layout gives `SegmentationPairs`: sorted (image path, label path) pairs of one split, the class names, and a
256-entry lookup table from stored label values to class ids (`ignore_index` = 255 for "not counted"; -1 marks a
value that must not occur, reported with the file that holds it).

- camvid: the SegNet CamVid layout `<split>/`, `<split>annot/` (same file names), 11 classes, stored 11 = ignore.
- cityscapes: `leftImg8bit/<split>/<city>/*_leftImg8bit.png` with `gtFine/<split>/<city>/*_gtFine_labelIds.png`
  (the `*_trainvaltest/` parents of the downloads may stay); labelIds 0..33 map to the 19 trainIds, every other id
  (and the license plate's -1, stored as 255) to ignore.
- kitti: KITTI semantics `training/image_2/*.png` with `training/semantic/*.png` (Cityscapes labelIds, mapped as
  above). It has no validation split: split `cv` k in {0, 1, 2} holds out every 10th image starting at k (train =
  the other 90%), a fixed stand-in for the reference's random 90/10 splits.
- folder: `[<split>/]images/*` with `[<split>/]labels/<same stem>.png` holding class ids (255 = ignore); class names
  from `classes.txt` (one per line) beside the splits, else `class_0 ..` up to the largest id found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IGNORE_INDEX = 255
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")

CAMVID_CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
                  "Bicyclist")
CAMVID_IGNORE = 11

CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")
# labelId -> trainId of the 19 evaluated classes (cityscapesScripts `labels.py`); the other ids are ignored.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                        26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
DATASETS = ("cityscapes", "camvid", "kitti", "folder")
KITTI_FOLDS = 10


@dataclass(frozen=True)
class SegmentationPairs:
    dataset: str
    split: str
    images: tuple[str, ...]
    labels: tuple[str, ...]
    class_names: tuple[str, ...]
    lookup: np.ndarray  # (256,) int16: stored value -> class id, IGNORE_INDEX, or -1 (invalid)
    item_lookups: tuple | None = None  # per item, when joined pairs store labels differently (`joined`)

    def __len__(self) -> int:
        return len(self.images)

    def lookup_for(self, index: int) -> np.ndarray:
        return self.item_lookups[index] if self.item_lookups is not None else self.lookup

    def joined(self, other: "SegmentationPairs") -> "SegmentationPairs":
        """These pairs followed by `other`'s (same classes; each keeps its own label lookup)."""
        if other.class_names != self.class_names:
            raise ValueError(f"cannot join {other.dataset} pairs with classes {other.class_names[:5]}... to "
                             f"{self.dataset} pairs with classes {self.class_names[:5]}...")
        lookups = tuple(self.lookup_for(i) for i in range(len(self))) + \
            tuple(other.lookup_for(i) for i in range(len(other)))
        return SegmentationPairs(self.dataset, self.split, self.images + other.images, self.labels + other.labels,
                                 self.class_names, self.lookup, lookups)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def identity_lookup(num_classes: int) -> np.ndarray:
    lookup = np.full(256, -1, dtype=np.int16)
    lookup[:num_classes] = np.arange(num_classes)
    lookup[IGNORE_INDEX] = IGNORE_INDEX
    return lookup


def cityscapes_lookup() -> np.ndarray:
    lookup = np.full(256, -1, dtype=np.int16)
    lookup[:34] = IGNORE_INDEX
    lookup[IGNORE_INDEX] = IGNORE_INDEX  # the license plate's -1 as uint8
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        lookup[label_id] = train_id
    return lookup


def camvid_lookup() -> np.ndarray:
    lookup = identity_lookup(len(CAMVID_CLASSES))
    lookup[CAMVID_IGNORE] = IGNORE_INDEX
    return lookup


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _missing(root: Path, dataset: str, what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{root} has no {what}: it is not a {dataset} folder as --dataset {dataset} expects "
                             f"(see `adlr-hf train --help`, or pick another --dataset of {', '.join(DATASETS)})")


def _match(images: list[Path], label_for, root: Path, dataset: str) -> tuple[list[str], list[str]]:
    labels = [label_for(image) for image in images]
    missing = [str(image) for image, label in zip(images, labels) if not label.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) of {root} have no label map, e.g. {missing[0]} (expected "
                                f"{label_for(Path(missing[0]))}); add the labels or remove the images")
    return [str(p) for p in images], [str(p) for p in labels]


def camvid_pairs(root: Path, split: str) -> SegmentationPairs:
    images_dir, labels_dir = root / split, root / f"{split}annot"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise _missing(root, "camvid", f"{split}/ and {split}annot/ folders")
    images, labels = _match(_images_in(images_dir), lambda p: labels_dir / p.name, root, "camvid")
    return SegmentationPairs("camvid", split, tuple(images), tuple(labels), CAMVID_CLASSES, camvid_lookup())


def _cityscapes_dir(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}_trainvaltest" / name):
        if candidate.is_dir():
            return candidate
    return None


def cityscapes_pairs(root: Path, split: str) -> SegmentationPairs:
    image_root, label_root = _cityscapes_dir(root, "leftImg8bit"), _cityscapes_dir(root, "gtFine")
    if image_root is None or label_root is None or not (image_root / split).is_dir():
        raise _missing(root, "cityscapes", f"leftImg8bit/{split}/ and gtFine/{split}/ folders")
    images = sorted((image_root / split).glob("*/*_leftImg8bit.png"))

    def label_for(image: Path) -> Path:
        stem = image.name[: -len("_leftImg8bit.png")]
        return label_root / split / image.parent.name / f"{stem}_gtFine_labelIds.png"

    images, labels = _match(images, label_for, root, "cityscapes")
    return SegmentationPairs("cityscapes", split, tuple(images), tuple(labels), CITYSCAPES_CLASSES,
                             cityscapes_lookup())


def kitti_pairs(root: Path, split: str, cv: int = 0) -> SegmentationPairs:
    images_dir, labels_dir = root / "training" / "image_2", root / "training" / "semantic"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise _missing(root, "kitti", "training/image_2/ and training/semantic/ folders")
    if split not in ("train", "val", "all"):
        raise ValueError(f"KITTI semantics split {split!r} must be 'train', 'val' (a 90/10 cv split) or 'all'")
    images, labels = _match(_images_in(images_dir), lambda p: labels_dir / p.name, root, "kitti")
    if split != "all":
        held = [i % KITTI_FOLDS == cv for i in range(len(images))]
        keep = [h == (split == "val") for h in held]
        images = [p for p, k in zip(images, keep) if k]
        labels = [p for p, k in zip(labels, keep) if k]
    return SegmentationPairs("kitti", split, tuple(images), tuple(labels), CITYSCAPES_CLASSES, cityscapes_lookup())


def folder_pairs(root: Path, split: str) -> SegmentationPairs:
    base = root / split if (root / split / "images").is_dir() else root
    if not (base / "images").is_dir() or not (base / "labels").is_dir():
        raise _missing(root, "folder", f"images/ and labels/ folders (or {split}/images/ and {split}/labels/)")
    images, labels = _match(_images_in(base / "images"), lambda p: base / "labels" / f"{p.stem}.png", root, "folder")
    names_file = root / "classes.txt"
    if names_file.is_file():
        names = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
    else:
        from PIL import Image

        largest = -1
        for path in labels:
            values = np.unique(np.asarray(Image.open(path)))
            values = values[values != IGNORE_INDEX]
            largest = max(largest, int(values.max()) if values.size else -1)
        names = tuple(f"class_{i}" for i in range(largest + 1))
    if not names or len(names) >= IGNORE_INDEX:
        raise ValueError(f"{root}: a folder dataset needs 1 to {IGNORE_INDEX - 1} classes (classes.txt, one name a "
                         f"line); got {len(names)}")
    return SegmentationPairs("folder", split, tuple(images), tuple(labels), names, identity_lookup(len(names)))


def find_pairs(root, dataset: str, split: str, cv: int = 0) -> SegmentationPairs:
    """The pairs of `split` of the `dataset` layout under `root` (see the module docstring)."""
    root = Path(root)
    if dataset not in DATASETS:
        raise ValueError(f"--dataset {dataset!r} is not one of {', '.join(DATASETS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"--data {str(root)!r} is not a folder")
    if dataset == "camvid":
        pairs = camvid_pairs(root, split)
    elif dataset == "cityscapes":
        pairs = cityscapes_pairs(root, split)
    elif dataset == "kitti":
        pairs = kitti_pairs(root, split, cv)
    else:
        pairs = folder_pairs(root, split)
    if not len(pairs):
        raise ValueError(f"{root} holds no {split!r} images for --dataset {dataset}")
    return pairs


def has_split(root, dataset: str, split: str) -> bool:
    """Whether `root` holds `split` in the `dataset` layout (the folder layout without splits has only 'train')."""
    root = Path(root)
    if dataset == "camvid":
        return (root / split).is_dir() and (root / f"{split}annot").is_dir()
    if dataset == "cityscapes":
        image_root = _cityscapes_dir(root, "leftImg8bit")
        return image_root is not None and (image_root / split).is_dir()
    if dataset == "kitti":
        return split in ("train", "val") and (root / "training" / "semantic").is_dir()
    return (root / split / "images").is_dir() or (split == "train" and (root / "images").is_dir())
