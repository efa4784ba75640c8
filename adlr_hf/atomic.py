"""The one way adlr_hf writes a file or a folder: readers see the old one or the complete new one, never a
half-written one, and a failure leaves the old one as it was."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable


def _tag() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_atomically(out: Path, build: Callable[[Path], None]) -> None:
    """`build(tmp)` fills a temporary sibling of `out`, which then replaces `out`; a failure leaves `out` as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = _tag()
    tmp = out.parent / f".{out.name}.writing-{tag}"
    old = out.parent / f".{out.name}.replaced-{tag}"
    try:
        tmp.mkdir()
        build(tmp)
        if out.exists():
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)
                raise
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary sibling of `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{_tag()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))
