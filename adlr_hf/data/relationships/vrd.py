"""VRD (Lu et al., ECCV 2016) annotations, the format RelDN's VRD and Visual Genome json also use
(NVIDIA/ContrastiveLosses4VRD `tools/rename_vrd_with_numbers.py`, `json_dataset_rel.py`):

    {"<image file>": [{"predicate": p, "subject": {"category": c, "bbox": [ymin, ymax, xmin, xmax]},
                       "object": {"category": c, "bbox": [ymin, ymax, xmin, xmax]}}, ...], ...}

with category and predicate 0-based indices into `objects.json` and `predicates.json` (lists of names). The split's
file is `annotations_<split>.json` (the original release) or `new_annotations_<split>.json` (RelDN's renamed copy).
Boxes become xyxy: [xmin, ymin, xmax, ymax]. Entities are the distinct (class, box) of the image's relations; a
relation listed twice is kept once.

Image sizes: read from the image (header only) when `image_dir` holds it (`image_dir/<file>`), else estimated as the
boxes' extent (max x2 + 1, max y2 + 1; VRD boxes are inclusive pixels), recorded as `size_from="boxes"`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..bad_samples import BadSamples
from .records import EntityTable, RelationshipData, finish

SPLIT_FILES = ("annotations_{split}.json", "new_annotations_{split}.json")


def read_names(path: Path) -> list[str]:
    names = json.loads(path.read_text())
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path} must hold a json list of names")
    return names


def image_size(image_dir: Path | None, file_name: str) -> tuple[int, int] | None:
    """(height, width) from the image header, or None without the file."""
    if image_dir is None or not (image_dir / file_name).is_file():
        return None
    from PIL import Image

    with Image.open(image_dir / file_name) as image:
        width, height = image.size
    return height, width


def split_file(folder: Path, split: str) -> Path:
    for pattern in SPLIT_FILES:
        if (folder / pattern.format(split=split)).is_file():
            return folder / pattern.format(split=split)
    raise FileNotFoundError(f"{folder} has no {' or '.join(p.format(split=split) for p in SPLIT_FILES)}; pass the "
                            "folder of the VRD annotations (with objects.json and predicates.json)")


def vrd_records(annotations: dict, image_dir: Path | None, where: str) -> list[dict]:
    if not isinstance(annotations, dict):
        raise ValueError(f"{where} must map image file names to lists of relations")
    records = []
    for file_name, relations in annotations.items():
        entities, triplets = EntityTable(), []
        for rel in relations or []:
            try:
                subject, obj, predicate = rel["subject"], rel["object"], int(rel["predicate"])
                ends = []
                for entity in (subject, obj):
                    ymin, ymax, xmin, xmax = entity["bbox"]
                    ends.append(entities.add(entity["category"], (xmin, ymin, xmax, ymax)))
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{where}: image {file_name}: relation {rel!r} is not "
                                 "{'predicate', 'subject': {'category', 'bbox'}, 'object': {...}}") from err
            triplet = [ends[0], ends[1], predicate]
            if triplet not in triplets:
                triplets.append(triplet)
        size = image_size(image_dir, file_name)
        if size is None and entities.boxes:
            size = (int(max(b[3] for b in entities.boxes)) + 1, int(max(b[2] for b in entities.boxes)) + 1)
            size_from = "boxes"
        else:
            size_from = "image"
        height, width = size or (0, 0)
        records.append(dict(file_name=file_name, height=height, width=width, size_from=size_from,
                            boxes=entities.boxes, box_labels=entities.labels, relations=triplets))
    return records


def load_vrd(folder, split: str, image_dir=None, bad: BadSamples | None = None) -> RelationshipData:
    """One split of VRD-format annotations in `folder` (annotations json, objects.json, predicates.json)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass the folder of the VRD annotations")
    for name in ("objects.json", "predicates.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}; VRD-format data needs objects.json and predicates.json "
                                    "(json lists of names) beside the annotations")
    path = split_file(folder, split)
    image_dir = Path(image_dir) if image_dir is not None else None
    records = vrd_records(json.loads(path.read_text()), image_dir, str(path))
    return finish(records, read_names(folder / "objects.json"), read_names(folder / "predicates.json"), "vrd",
                  bad or BadSamples("error"), str(path))
