"""Shared non-parallel building blocks, one idea per file."""

from .partial_conv import PartialConv2d, convert_to_partial_padding

__all__ = ["PartialConv2d", "convert_to_partial_padding"]
