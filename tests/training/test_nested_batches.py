"""The loop moves any nesting of dicts, lists, tuples and namedtuples of tensors to the device (relationship detection
passes per-image target dicts, video tasks pass clips), leaving other values alone."""

from collections import namedtuple

import torch

from adlr_hf.training.trainer import to_device


def test_nested_batches_move_every_tensor_and_keep_their_structure():
    Clip = namedtuple("Clip", ["frames", "fps"])
    batch = {"pixel_values": torch.zeros(2, 3), "targets": [{"boxes": torch.ones(1, 4), "labels": torch.tensor([3])},
                                                            {"boxes": torch.ones(0, 4), "labels": torch.tensor([])}],
             "clips": (Clip(torch.zeros(4, 3, 8, 8), 30), "name"), "scale": 0.5}
    moved = to_device(batch, torch.device("meta"))
    assert moved["pixel_values"].is_meta and moved["scale"] == 0.5
    assert [t["boxes"].is_meta and t["labels"].is_meta for t in moved["targets"]] == [True, True]
    assert isinstance(moved["targets"], list) and isinstance(moved["clips"], tuple)
    clip = moved["clips"][0]
    assert isinstance(clip, Clip) and clip.frames.is_meta and clip.fps == 30 and moved["clips"][1] == "name"
    assert not batch["pixel_values"].is_meta  # the input is left as it was
