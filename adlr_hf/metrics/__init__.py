"""`evaluate` metric modules, one folder each (`<name>/<name>.py`), loadable offline with
`evaluate.load(metric_path("<name>"))` or importable as classes."""

from pathlib import Path


def metric_path(name: str) -> str:
    """The folder of the metric module `name`, for `evaluate.load`."""
    path = Path(__file__).resolve().parent / name
    if not (path / f"{name}.py").is_file():
        known = sorted(p.name for p in Path(__file__).resolve().parent.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"no metric module {name!r}; known: {known}")
    return str(path)
