"""Visual Genome scene graphs, three layouts, chosen by what the folder holds, in this order:

0. The VG-150 benchmark release: `VG-SGG.h5` (or `VG-SGG-with-attri.h5`) + `VG-SGG-dicts.json` +
   `image_data.json`, read by `load_vg_sgg_h5` (splits train / val / test; see vg_sgg_h5.py). When the h5 file is
   there, it is used even if the folder also holds json annotations.
1. RelDN's prepared files: the VRD json format (`annotations_<split>.json` / `new_annotations_<split>.json`,
   `objects.json`, `predicates.json`), read by `load_vrd`.
2. The raw release: `relationships.json` (a list of {"image_id", "relationships": [{"predicate", "subject",
   "object"}]}, entities {"object_id", "x", "y", "w", "h", "name" or "names": [...]}) and `image_data.json`
   ({"image_id", "width", "height"}), restricted to a vocabulary: `VG-SGG-dicts.json` (the VG-150 split's
   `label_to_idx` / `predicate_to_idx`, 1-based) or `objects.json` / `predicates.json` lists; the split's images are
   listed one id a line in `<split>.txt` (without it every image is in the split). Names are lower-cased and
   stripped; a relation whose subject, object or predicate is outside the vocabulary is left out (counted in
   `RelationshipData.skipped` as one entry per image). Boxes xywh become xyxy [x, y, x + w - 1, y + h - 1]
   (inclusive pixels, as Visual Genome's own conversions); entities are distinct by object_id.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..bad_samples import BadSamples
from .records import EntityTable, RelationshipData, finish
from .vg_sgg_h5 import find_h5, load_vg_sgg_h5
from .vrd import SPLIT_FILES, load_vrd, read_names


def _vocabulary(folder: Path) -> tuple[list[str], list[str]]:
    dicts = folder / "VG-SGG-dicts.json"
    if dicts.is_file():
        data = json.loads(dicts.read_text())
        try:
            objects = sorted(data["label_to_idx"], key=data["label_to_idx"].get)
            predicates = sorted(data["predicate_to_idx"], key=data["predicate_to_idx"].get)
        except KeyError as err:
            raise ValueError(f"{dicts} has no {err}; expected the VG-150 split's label_to_idx and "
                             "predicate_to_idx") from err
        return objects, predicates
    if (folder / "objects.json").is_file() and (folder / "predicates.json").is_file():
        return read_names(folder / "objects.json"), read_names(folder / "predicates.json")
    raise FileNotFoundError(f"{folder} has relationships.json but no vocabulary: add VG-SGG-dicts.json (VG-150) or "
                            "objects.json and predicates.json")


def _name(entity: dict) -> str:
    name = entity.get("name")
    if name is None:
        names = entity.get("names") or [""]
        name = names[0]
    return str(name).strip().lower()


def load_visual_genome(folder, split: str, bad: BadSamples | None = None) -> RelationshipData:
    folder = Path(folder)
    if find_h5(folder) is not None:
        return load_vg_sgg_h5(folder, split, bad=bad)
    if any((folder / p.format(split=split)).is_file() for p in SPLIT_FILES):
        data = load_vrd(folder, split, bad=bad)
        data.source = "vg"
        return data
    relationships = folder / "relationships.json"
    if not relationships.is_file():
        raise FileNotFoundError(f"{folder} has neither relationships.json (raw Visual Genome) nor "
                                f"annotations_{split}.json (RelDN's VG json); pass a Visual Genome folder")
    objects, predicates = _vocabulary(folder)
    object_index = {n: i for i, n in enumerate(objects)}
    predicate_index = {n: i for i, n in enumerate(predicates)}
    sizes = {}
    if (folder / "image_data.json").is_file():
        sizes = {int(m["image_id"]): (int(m["height"]), int(m["width"]))
                 for m in json.loads((folder / "image_data.json").read_text())}
    wanted = None
    if (folder / f"{split}.txt").is_file():
        wanted = {int(line) for line in (folder / f"{split}.txt").read_text().split()}
    records, skipped = [], []
    for image in json.loads(relationships.read_text()):
        image_id = int(image["image_id"])
        if wanted is not None and image_id not in wanted:
            continue
        entities, triplets, left_out = EntityTable(), [], 0
        for rel in image.get("relationships", []):
            s, o = rel["subject"], rel["object"]
            p = str(rel["predicate"]).strip().lower()
            if _name(s) not in object_index or _name(o) not in object_index or p not in predicate_index:
                left_out += 1
                continue
            ends = [entities.add(object_index[_name(e)], (e["x"], e["y"], e["x"] + e["w"] - 1, e["y"] + e["h"] - 1))
                    for e in (s, o)]
            triplet = [ends[0], ends[1], predicate_index[p]]
            if triplet not in triplets:
                triplets.append(triplet)
        if left_out:
            skipped.append((str(image_id), f"{left_out} relations outside the vocabulary"))
        if image_id in sizes:
            (height, width), size_from = sizes[image_id], "annotation"
        elif entities.boxes:
            height = int(max(b[3] for b in entities.boxes)) + 1
            width = int(max(b[2] for b in entities.boxes)) + 1
            size_from = "boxes"
        else:
            height = width = 0
            size_from = "boxes"
        records.append(dict(file_name=f"{image_id}.jpg", height=height, width=width, size_from=size_from,
                            boxes=entities.boxes, box_labels=entities.labels, relations=triplets))
    data = finish(records, objects, predicates, "vg", bad or BadSamples("error"), str(relationships))
    data.skipped = skipped + data.skipped
    return data
