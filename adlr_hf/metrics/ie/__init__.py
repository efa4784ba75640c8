"""Middlebury interpolation error (RMS difference) of predicted frames, for the video families (arXiv 1811.00684)."""

from .ie import COLOR_RULES, InterpolationError, interpolation_error

__all__ = ["COLOR_RULES", "InterpolationError", "interpolation_error"]
