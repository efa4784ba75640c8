"""The model card's picture of a landmark model (Shih et al., arXiv 1909.02749; landmark model after
NVIDIA/UnsupervisedLandmarkLearning): a real frame with its K landmarks drawn on it (a dot at each mean and the
ellipse of one standard deviation of its covariance), the rendered Cauchy-like landmark maps, and the frame decoded
from those landmarks with the frame's own appearance — three panels side by side, as PNG bytes.

Colours follow the landmark index (one hue per landmark), so the same part has the same colour in the first two
panels and across cards of the same model.
"""

from __future__ import annotations

import colorsys
import io
import math

import torch

from .landmark_geometry import render_landmarks

PANEL = 256  # pixels per panel side in the card (frames are upscaled with nearest neighbours, so pixels stay visible)


def landmark_colours(k: int) -> torch.Tensor:
    """(K, 3) RGB in [0, 1], evenly spaced hues."""
    return torch.tensor([colorsys.hsv_to_rgb(i / k, 0.9, 1.0) for i in range(k)], dtype=torch.float32)


def _to_image(frame: torch.Tensor):
    """(3, H, W) in [-1, 1] -> a PANEL x PANEL PIL image."""
    from PIL import Image

    pixels = ((frame.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels).resize((PANEL, PANEL), Image.NEAREST)


def _ellipse_points(mu: torch.Tensor, covariance: torch.Tensor, steps: int = 24) -> list[tuple[float, float]]:
    """Panel pixels of the one-standard-deviation ellipse of a landmark ((x, y) in [-1, 1])."""
    values, vectors = torch.linalg.eigh(covariance.double())
    axes = vectors * values.clamp_min(0).sqrt()  # columns: the ellipse's half axes
    out = []
    for i in range(steps + 1):
        angle = 2 * math.pi * i / steps
        point = mu.double() + axes @ torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
        out.append(tuple(float(v) for v in (point + 1) / 2 * PANEL))
    return out


def rendered_maps_image(mu: torch.Tensor, covariance: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) in [-1, 1]: each landmark's rendered map in its colour, the maximum over landmarks per pixel."""
    maps = render_landmarks(mu[None].float(), covariance[None].float(), *size)[0]  # (K, H, W) in (0, 1]
    coloured = maps[:, None] * landmark_colours(mu.shape[0])[:, :, None, None]  # (K, 3, H, W)
    return coloured.amax(dim=0) * 2 - 1


@torch.no_grad()
def landmark_figure(model, frame: torch.Tensor) -> bytes:
    """PNG of the three panels for one frame (3, H, W) in [-1, 1] at the model's size (H, W multiples of 16)."""
    from PIL import Image, ImageDraw

    param = next(model.parameters())
    frames = frame[None].to(param.device, param.dtype)
    pose = model.encode_pose(frames)
    appearance = model.encode_appearance(frames, pose.mu, pose.covariance, pose.heatmaps, pose.features)
    decoded = model.decode(appearance, pose.mu, pose.covariance)[0]
    mu, covariance = pose.mu[0].cpu(), pose.covariance[0].cpu()
    colours = [tuple(int(round(255 * c)) for c in rgb) for rgb in landmark_colours(mu.shape[0]).tolist()]

    drawn = _to_image(frame)
    pen = ImageDraw.Draw(drawn)
    for i in range(mu.shape[0]):
        pen.line(_ellipse_points(mu[i], covariance[i]), fill=colours[i], width=1)
        x, y = ((mu[i] + 1) / 2 * PANEL).tolist()
        pen.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colours[i], outline=(0, 0, 0))
    panels = [drawn, _to_image(rendered_maps_image(mu, covariance, tuple(frame.shape[-2:]))), _to_image(decoded)]
    sheet = Image.new("RGB", (PANEL * len(panels), PANEL))
    for i, panel in enumerate(panels):
        sheet.paste(panel, (i * PANEL, 0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


__all__ = ["landmark_colours", "landmark_figure", "rendered_maps_image"]
