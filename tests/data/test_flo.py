"""Middlebury .flo files (used for precomputed flows of SDC-Net, arXiv 1811.00684): round trip, exact byte layout,
and every malformed file named in one clear error."""

import struct

import numpy as np
import pytest
import torch

from adlr_hf.data.flo import FLO_MAGIC, read_flo, write_flo


@pytest.mark.parametrize("height, width", [(1, 1), (3, 5), (37, 64)])
def test_round_trip(tmp_path, height, width):
    flow = np.random.default_rng(height).normal(0, 10, (height, width, 2)).astype(np.float32)
    flow[0, 0] = [1e9, -1e9]  # Middlebury's unknown-flow marks are kept as they are
    path = write_flo(tmp_path / "a.flo", flow)
    back = read_flo(path)
    assert back.dtype == np.float32 and back.shape == (height, width, 2)
    assert np.array_equal(back, flow)


def test_byte_layout_is_middlebury(tmp_path):
    flow = np.array([[[1.5, -2.0], [3.0, 4.25]]], dtype=np.float32)  # H=1, W=2
    data = write_flo(tmp_path / "b.flo", flow).read_bytes()
    assert data[:4] == b"PIEH" and struct.unpack("<f", data[:4])[0] == FLO_MAGIC
    assert struct.unpack("<ii", data[4:12]) == (2, 1)  # width, height
    assert struct.unpack("<4f", data[12:]) == (1.5, -2.0, 3.0, 4.25)  # u, v interleaved per pixel, row-major


def test_writes_channel_first_tensors(tmp_path):
    flow = torch.randn(2, 4, 6)
    assert np.array_equal(read_flo(write_flo(tmp_path / "c.flo", flow)), flow.permute(1, 2, 0).numpy())


def _header(width, height):
    return struct.pack("<f", FLO_MAGIC) + struct.pack("<ii", width, height)


@pytest.mark.parametrize("payload, match", [
    (b"PIE", "shorter than the 12-byte .flo header"),
    (b"XXXX" + struct.pack("<ii", 1, 1) + b"\0" * 8, "does not start with the .flo magic number"),
    (_header(2, 2) + b"\0" * 8, r"is 20 bytes but its 2x2 header needs 44"),
    (_header(1, 1) + b"\0" * 12, "truncated or has trailing data"),
    (_header(0, 5), "declares a 0x5 flow field"),
    (_header(-3, 5), "declares a -3x5 flow field"),
    (_header(1 << 20, 1 << 20), "the header is corrupt"),
])
def test_bad_files_are_named(tmp_path, payload, match):
    path = tmp_path / "bad.flo"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=match) as err:
        read_flo(path)
    assert "bad.flo" in str(err.value)


def test_missing_file_and_bad_writes(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.flo"):
        read_flo(tmp_path / "missing.flo")
    with pytest.raises(ValueError, match=r"must be \(H, W, 2\) or \(2, H, W\); got shape \(4, 5, 3\)"):
        write_flo(tmp_path / "x.flo", np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match="real numbers"):
        write_flo(tmp_path / "x.flo", np.zeros((4, 5, 2), dtype=complex))
    with pytest.raises(FileNotFoundError, match="create it before writing x.flo"):
        write_flo(tmp_path / "nowhere" / "x.flo", np.zeros((4, 5, 2)))
    assert not (tmp_path / "x.flo").exists()
