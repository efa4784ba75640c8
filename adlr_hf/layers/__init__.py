"""Shared non-parallel building blocks, one idea per file."""

from .partial_conv import PartialConv2d, convert_to_partial_padding
from .sdc import sdc
from .warp import warp

__all__ = ["PartialConv2d", "convert_to_partial_padding", "sdc", "warp"]
