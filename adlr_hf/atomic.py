"""Write a folder so that readers see the old one or the complete new one, never a half-written one."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable


def write_atomically(out: Path, build: Callable[[Path], None]) -> None:
    """`build(tmp)` fills a temporary sibling of `out`, which then replaces `out`; a failure leaves `out` as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out.parent / f".{out.name}.writing-{tag}"
    old = out.parent / f".{out.name}.replaced-{tag}"
    try:
        tmp.mkdir()
        build(tmp)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
