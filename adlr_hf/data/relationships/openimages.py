"""OpenImages Visual Relationship Detection annotations (the 2018 challenge's csv, one relation a row):

    ImageID,LabelName1,LabelName2,XMin1,XMax1,YMin1,YMax1,XMin2,XMax2,YMin2,YMax2,RelationshipLabel

with label names (MIDs such as /m/01g317) and coordinates normalised to [0, 1]. The split's file is
`<split>-annotations-vrd.csv` or `<split>.csv`; the vocabularies are `objects.json` / `predicates.json` (json lists of
names or MIDs) when present, else the sorted names the file uses. Coordinates become pixels with the image's size
(read from `image_dir/<ImageID>.jpg` when present); without the image, a nominal 1000 x 1000 canvas is used and the
record says `size_from="nominal"` (the spatial feature then sees the image as square).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..bad_samples import BadSamples
from .records import EntityTable, RelationshipData, finish
from .vrd import image_size, read_names

COLUMNS = ("ImageID", "LabelName1", "LabelName2", "XMin1", "XMax1", "YMin1", "YMax1", "XMin2", "XMax2", "YMin2",
           "YMax2", "RelationshipLabel")
NOMINAL_SIZE = 1000


def split_csv(folder: Path, split: str) -> Path:
    for name in (f"{split}-annotations-vrd.csv", f"{split}.csv"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder} has no {split}-annotations-vrd.csv or {split}.csv; pass the folder of the "
                            "OpenImages VRD csv files")


def load_openimages(folder, split: str, image_dir=None, bad: BadSamples | None = None) -> RelationshipData:
    folder = Path(folder)
    path = split_csv(folder, split)
    image_dir = Path(image_dir) if image_dir is not None else None
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}; expected {','.join(COLUMNS)}")
        rows = list(reader)
    if (folder / "objects.json").is_file() and (folder / "predicates.json").is_file():
        objects, predicates = read_names(folder / "objects.json"), read_names(folder / "predicates.json")
    else:
        objects = sorted({r["LabelName1"] for r in rows} | {r["LabelName2"] for r in rows})
        predicates = sorted({r["RelationshipLabel"] for r in rows})
    object_index = {n: i for i, n in enumerate(objects)}
    predicate_index = {n: i for i, n in enumerate(predicates)}
    by_image: dict[str, list[dict]] = {}
    for row in rows:
        by_image.setdefault(row["ImageID"], []).append(row)
    records = []
    for image_id, image_rows in by_image.items():
        file_name = f"{image_id}.jpg"
        size = image_size(image_dir, file_name)
        height, width = size or (NOMINAL_SIZE, NOMINAL_SIZE)
        entities, triplets = EntityTable(), []
        for row in image_rows:
            ends = []
            for k in ("1", "2"):
                # an unknown name maps to the vocabulary's size, which the record check reports
                label = object_index.get(row[f"LabelName{k}"], len(objects))
                box = (float(row[f"XMin{k}"]) * width, float(row[f"YMin{k}"]) * height,
                       float(row[f"XMax{k}"]) * width, float(row[f"YMax{k}"]) * height)
                ends.append(entities.add(label, box))
            triplet = [ends[0], ends[1], predicate_index.get(row["RelationshipLabel"], len(predicates))]
            if triplet not in triplets:
                triplets.append(triplet)
        records.append(dict(file_name=file_name, height=height, width=width,
                            size_from="image" if size else "nominal", boxes=entities.boxes,
                            box_labels=entities.labels, relations=triplets))
    return finish(records, objects, predicates, "oi", bad or BadSamples("error"), str(path))

