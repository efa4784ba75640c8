"""What the reference-checkpoint converters' tests share: a checkpoint saved in the references' layout, and the
check that a missing or unreadable file and each broken checkpoint fail with one clear error and write nothing, that
a non-empty output folder is refused and that the CLI exits with 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adlr_hf.cli import main as cli


def save_reference_checkpoint(path: Path, model, state: dict, arch: str, epoch: int) -> Path:
    """`state` saved as the references' training scripts save a checkpoint: {"epoch", "arch", "state_dict",
    "optimizer"} (an Adam state of `model`)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4).state_dict()
    torch.save({"epoch": epoch, "arch": arch, "state_dict": state, "optimizer": optimizer}, path)
    return path


def assert_bad_checkpoints_fail(convert, kind: str, good: Path, cases: dict, tmp_path: Path) -> None:
    """`convert(src, out)` (`adlr-hf convert KIND`) on each broken checkpoint of `cases` ({name: (saved object,
    error pattern)}), written with `good`'s suffixes, and on a missing and a garbage file."""
    out, suffix = tmp_path / "out", "".join(good.suffixes)
    with pytest.raises(FileNotFoundError, match="is not a file"):
        convert(tmp_path / f"missing{suffix}", out)
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        convert(garbage, out)
    for name, (obj, message) in cases.items():
        bad = tmp_path / f"{name}{suffix}"
        torch.save(obj, bad)
        with pytest.raises(ValueError, match=message):
            convert(bad, out)
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        convert(good, out)
    assert cli(["convert", kind, str(garbage), str(tmp_path / "cli-out")]) == 2
    assert not (tmp_path / "cli-out").exists()
