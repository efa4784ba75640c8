"""The one record every relationship loader (VRD, Visual Genome, OpenImages VRD) produces, and its checks.

A record is one image: `file_name`, `height`, `width` (pixels), `boxes` ([n, 4] xyxy pixels, one row per distinct
entity), `box_labels` ([n] object class ids, 0-based), `relations` ([r, 3]: subject index, object index, predicate id
0-based, indices into `boxes`), and `size_from` ("image" when the size was read from the image file, "boxes" when
it was estimated as the boxes' extent because the image is absent, "annotation" when the file states it).

Bad input (`check_record`): a box with x1 > x2 or y1 > y2, a box outside the image, a class or predicate id beyond
the vocabulary, or a relation naming a missing entity is reported to a `BadSamples` policy: `--on-bad-sample error`
stops with the image and the problem, `skip` leaves the image out and counts it. An image with no relation (so no
boxes, in PredCls) is not an error: loaders leave it out and count it (`RelationshipData.empty_images`), because it
gives no pair to train on and no relation to recall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets

FEATURES = datasets.Features({
    "file_name": datasets.Value("string"),
    "height": datasets.Value("int64"),
    "width": datasets.Value("int64"),
    "size_from": datasets.Value("string"),
    "boxes": datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=4)),
    "box_labels": datasets.Sequence(datasets.Value("int64")),
    "relations": datasets.Sequence(datasets.Sequence(datasets.Value("int64"), length=3)),
})


@dataclass
class RelationshipData:
    """A loaded split: the records as a `datasets.Dataset`, the vocabularies and what was left out."""

    records: datasets.Dataset
    object_names: list[str]
    predicate_names: list[str]
    source: str
    empty_images: int = 0  # images without a relation, left out
    skipped: list = field(default_factory=list)  # (image, why) of images left out under --on-bad-sample skip

    def triplets(self):
        """(subject class, object class, predicate) of every relation, for the frequency table."""
        for row in self.records:
            labels = row["box_labels"]
            for s, o, p in row["relations"]:
                yield labels[s], labels[o], p


class EntityTable:
    """Distinct entities of one image, in first-seen order: a (class, box) seen again gets its first index."""

    def __init__(self):
        self.index: dict[tuple, int] = {}
        self.boxes: list[list[float]] = []
        self.labels: list[int] = []

    def add(self, label: int, box) -> int:
        key = (int(label), *(float(v) for v in box))
        if key not in self.index:
            self.index[key] = len(self.boxes)
            self.boxes.append([float(v) for v in box])
            self.labels.append(int(label))
        return self.index[key]


def record_problem(record: dict, num_objects: int, num_predicates: int) -> str | None:
    """Why `record` cannot be used, or None."""
    width, height = record["width"], record["height"]
    for i, ((x1, y1, x2, y2), label) in enumerate(zip(record["boxes"], record["box_labels"])):
        if x1 > x2 or y1 > y2:
            return (f"box {i} {[x1, y1, x2, y2]} (xyxy) has x1 > x2 or y1 > y2; for VRD the annotation order is "
                    "[ymin, ymax, xmin, xmax]")
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            return f"box {i} {[x1, y1, x2, y2]} (xyxy) lies outside the {width}x{height} image"
        if not 0 <= label < num_objects:
            return f"object class {label} of box {i} is outside the vocabulary of {num_objects} classes"
    for s, o, p in record["relations"]:
        if not 0 <= p < num_predicates:
            return f"predicate {p} is outside the vocabulary of {num_predicates} predicates"
        if not (0 <= s < len(record["boxes"]) and 0 <= o < len(record["boxes"])):
            return f"relation ({s}, {o}, {p}) names an entity beyond the image's {len(record['boxes'])}"
    return None


def finish(records: list[dict], object_names, predicate_names, source: str, bad, where: str) -> RelationshipData:
    """Check every record (bad ones to the `bad` policy), leave out images without relations, build the dataset."""
    keep, empty, skipped = [], 0, []
    for record in records:
        if not record["relations"]:
            empty += 1
            continue
        problem = record_problem(record, len(object_names), len(predicate_names))
        if problem is not None:
            bad.report(f"{where}: image {record['file_name']}", problem)
            skipped.append((record["file_name"], problem))
            continue
        keep.append(record)
    if not keep:
        raise ValueError(f"{where} holds no image with a usable relation ({len(records)} images, {empty} without "
                         f"relations, {len(skipped)} skipped)")
    return RelationshipData(datasets.Dataset.from_list(keep, features=FEATURES), list(object_names),
                            list(predicate_names), source, empty, skipped)
