"""Samples that cannot be read (a truncated JPEG, a text file that is not UTF-8, an empty file), found while the data
is prepared, before step 1: `--on-bad-sample error` stops with the sample's path, `skip` leaves it out and counts it
(run_info.json and the model card report the count)."""

from __future__ import annotations

import datasets

MODES = ("error", "skip")


class BadSamples:
    """Collects unreadable samples under one policy (`mode`: "error" or "skip")."""

    def __init__(self, mode: str = "error"):
        if mode not in MODES:
            raise ValueError(f"--on-bad-sample {mode!r} is not one of {MODES}")
        self.mode = mode
        self.found: list[tuple[str, str]] = []  # (path, why)

    def report(self, path, why: str) -> None:
        """Record an unreadable sample; in "error" mode, stop with its path."""
        if self.mode == "error":
            raise ValueError(f"{path} cannot be read ({why}); fix or remove it, or pass --on-bad-sample skip to leave "
                             "unreadable samples out (they are counted in run_info.json)")
        self.found.append((str(path), why))

    def summary(self) -> dict:
        return {"skipped_samples": len(self.found), "skipped_paths": [p for p, _ in self.found[:20]]} \
            if self.found else {}


def _image_problem(path: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()  # decodes every pixel: a truncated file fails here, not at step N
    except Exception as err:  # noqa: BLE001 - any decoder error means the sample is unreadable
        return f"{type(err).__name__}: {err}"
    return None


def readable_images(dataset: datasets.Dataset, bad: BadSamples, image_column: str = "image") -> datasets.Dataset:
    """`dataset` without the rows whose image file does not decode (each reported to `bad`)."""
    paths = [row["path"] for row in dataset.cast_column(image_column, datasets.Image(decode=False))[image_column]]
    keep = []
    for index, path in enumerate(paths):
        problem = _image_problem(path) if path else None
        if problem is None:
            keep.append(index)
        else:
            bad.report(path, problem)
    return dataset if len(keep) == len(paths) else dataset.select(keep)
