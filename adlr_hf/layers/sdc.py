"""Spatially-displaced convolution (SDC): per-pixel separable kernels applied at a per-pixel displaced location.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/spatialdisplconv_package/` (a CUDA extension).

    out[b, c, y, x] = sum_{i, j < k} Kv[b, i, y, x] * Kh[b, j, y, x]
                      * bilinear(I[b, c], y + v[b, y, x] + i - (k-1)/2, x + u[b, y, x] + j - (k-1)/2)

with flow channel 0 = u (x displacement) and channel 1 = v (y displacement), in pixels; each sample coordinate is
clamped to the image ([0, H-1] and [0, W-1]: border padding, `grid_sample(align_corners=True,
padding_mode="border")` semantics). With k = 1 and unit kernels the op is `adlr_hf.layers.warp.warp`.

Deviations from the reference (see the spec's notes on its kernel):
- the window is centred on the displaced point ((k-1)/2 taps each side); the CUDA op starts it at the displaced point
  of a padded image and leaves the centring to how the caller splits the padding;
- gradients come from one definition (autograd of the formula above); the CUDA backward uses int() where its forward
  uses floor(), so the two disagree for negative coordinates;
- pure PyTorch (gathers and index_add), no compiled extension.

How it runs lean: all k*k taps of a pixel share the fractional part of (y + v, x + u), so the bilinear weights fold
into the kernels. With Y = y + v - (k-1)/2 clamped to [-k, H-1], y0 = floor(Y), a = Y - y0 (and likewise X, x0, b):

    out = sum_{m, n <= k} A[m] * B[n] * Ipad[y0 + m, x0 + n],   A[m] = Kv[m] (1 - a) + Kv[m-1] a,
                                                                  B[n] = Kh[n] (1 - b) + Kh[n-1] b

(Kv[-1] = Kv[k] = 0; Ipad = the image replicate-padded by k, which realises the per-tap clamping exactly). So the op
is (k+1)^2 integer gathers weighted by an outer product, done one row offset m at a time; `_SDCFunction` saves only
its inputs and recomputes the gathers in backward, so the memory held between forward and backward is the inputs', and
the peak is O(k) images rather than the O(k^2) of `sdc_naive` (k^2 shifted `grid_sample`s kept for backward).

This file needs only torch, so a published model folder can carry a copy of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .warp import flow_to_grid, warp

__all__ = ["sdc", "sdc_naive"]


def _check_inputs(image, kernel_v, kernel_h, flow) -> int:
    names = {"image": image, "kernel_v": kernel_v, "kernel_h": kernel_h, "flow": flow}
    for name, value in names.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name} must be a torch tensor; got {type(value).__name__}")
        if value.dim() != 4:
            raise ValueError(f"{name} must be 4-D (B, channels, H, W); got shape {tuple(value.shape)}")
        if not value.is_floating_point():
            raise ValueError(f"{name} must be floating point; got dtype {value.dtype} (convert with .float())")
        if value.device != image.device:
            raise ValueError(f"{name} is on {value.device} but image is on {image.device}; move them to one device")
    batch, _, height, width = image.shape
    k = kernel_v.shape[1]
    if k < 1 or kernel_h.shape[1] != k:
        raise ValueError(f"kernel_v {tuple(kernel_v.shape)} and kernel_h {tuple(kernel_h.shape)} must both have k >= 1 "
                         "channels (one per tap of the separable k-tap kernel)")
    if flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W) with (u, v) = (x, y) displacement in pixels; got shape "
                         f"{tuple(flow.shape)}")
    for name in ("kernel_v", "kernel_h", "flow"):
        shape = names[name].shape
        if shape[0] != batch or tuple(shape[2:]) != (height, width):
            raise ValueError(f"{name} {tuple(shape)} must match the image's batch size and H, W "
                             f"({batch}, ·, {height}, {width})")
    if image.numel() == 0:
        raise ValueError(f"image {tuple(image.shape)} is empty")
    return k


def sdc(image: torch.Tensor, kernel_v: torch.Tensor, kernel_h: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Spatially-displaced convolution of `image` (B, C, H, W) with per-pixel vertical and horizontal k-tap kernels
    `kernel_v`, `kernel_h` (B, k, H, W) centred at the displaced point (x + u, y + v), `flow` (B, 2, H, W) in pixels.
    Differentiable in all four inputs; computed in their promoted floating dtype."""
    k = _check_inputs(image, kernel_v, kernel_h, flow)
    dtype = torch.promote_types(torch.promote_types(image.dtype, kernel_v.dtype),
                                torch.promote_types(kernel_h.dtype, flow.dtype))
    image, kernel_v, kernel_h, flow = (t.to(dtype) for t in (image, kernel_v, kernel_h, flow))
    if k == 1:  # one tap: the op is a scaled bilinear warp; grid_sample is exact and cheapest here
        return kernel_v * kernel_h * warp(image, flow)
    return _SDCFunction.apply(image, kernel_v, kernel_h, flow)


def sdc_naive(image: torch.Tensor, kernel_v: torch.Tensor, kernel_h: torch.Tensor,
              flow: torch.Tensor) -> torch.Tensor:
    """The reference formulation (for tests and benchmarks): k*k shifted bilinear `grid_sample`s weighted by
    Kv[i] * Kh[j], differentiated by autograd, which keeps every tap's grid and sample for backward."""
    k = _check_inputs(image, kernel_v, kernel_h, flow)
    _, _, height, width = image.shape
    grid = flow_to_grid(flow)
    step = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=flow.dtype, device=flow.device)
    centre = (k - 1) / 2
    out = None
    for i in range(k):
        for j in range(k):
            shifted = grid + torch.tensor([j - centre, i - centre], dtype=flow.dtype, device=flow.device) * step
            sample = F.grid_sample(image, shifted, mode="bilinear", padding_mode="border", align_corners=True)
            term = (kernel_v[:, i:i + 1] * kernel_h[:, j:j + 1]) * sample
            out = term if out is None else out + term
    return out


class _Geometry:
    """Integer patch origins and shared bilinear fractions of every output pixel (pixel index p = (b, y, x) flat)."""

    def __init__(self, flow: torch.Tensor, k: int, height: int, width: int):
        batch = flow.shape[0]
        centre = (k - 1) / 2
        ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
        xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
        y_raw = ys + flow[:, 1] - centre
        x_raw = xs + flow[:, 0] - centre
        # Beyond [-k, H-1] every tap reads the same clamped row, so clamping there changes no value (zero gradient).
        y = y_raw.clamp(-k, height - 1)
        x = x_raw.clamp(-k, width - 1)
        y0 = torch.nan_to_num(y, nan=0.0).floor()
        x0 = torch.nan_to_num(x, nan=0.0).floor()
        self.frac_y = (y - y0).reshape(-1)  # NaN motion stays NaN in the output through these
        self.frac_x = (x - x0).reshape(-1)
        self.inside_y = ((y_raw >= -k) & (y_raw <= height - 1)).reshape(-1)
        self.inside_x = ((x_raw >= -k) & (x_raw <= width - 1)).reshape(-1)
        self.padded_h, self.padded_w = height + 2 * k, width + 2 * k
        self.plane = self.padded_h * self.padded_w
        # position of the patch origin in one padded plane; rows y0 + k + m, columns x0 + k + n
        local = ((y0.long() + k) * self.padded_w + (x0.long() + k)).reshape(-1)
        self.batch_of = torch.arange(batch, device=flow.device).repeat_interleave(height * width)
        self.local = local


def _tap_weights(kernel: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """(P, k+1) weights W[m] = K[m] (1 - f) + K[m-1] f of the k+1 integer rows (or columns) a pixel reads."""
    batch, k, height, width = kernel.shape
    taps = kernel.permute(0, 2, 3, 1).reshape(batch * height * width, k)
    frac = frac[:, None]
    out = taps.new_zeros(taps.shape[0], k + 1)
    out[:, :k] = taps * (1 - frac)
    out[:, 1:] += taps * frac
    return out


def _tap_weight_grads(grad_w: torch.Tensor, kernel: torch.Tensor, frac: torch.Tensor):
    """Gradients of the kernel (B, k, H, W) and of the fraction (P,) from the gradient of `_tap_weights`' output."""
    batch, k, height, width = kernel.shape
    taps = kernel.permute(0, 2, 3, 1).reshape(batch * height * width, k)
    f = frac[:, None]
    grad_taps = grad_w[:, :k] * (1 - f) + grad_w[:, 1:] * f
    grad_frac = ((grad_w[:, 1:] - grad_w[:, :k]) * taps).sum(1)
    return grad_taps.reshape(batch, height, width, k).permute(0, 3, 1, 2), grad_frac


def _padded_planes(image: torch.Tensor, k: int) -> torch.Tensor:
    """The image replicate-padded by k on each side, as one flat tensor of (B*C) planes, and its k+1-wide windows."""
    flat = F.pad(image, (k, k, k, k), mode="replicate").contiguous().reshape(-1)
    # windows[i] = flat[i : i + k + 1] (an overlapping view, no copy)
    return flat.as_strided((flat.numel() - k, k + 1), (1, 1), flat.storage_offset())


def _fold_replicate_pad(grad_padded: torch.Tensor, k: int) -> torch.Tensor:
    """Backward of `F.pad(x, (k, k, k, k), mode="replicate")`: add the border bands into the edge rows/columns."""
    g = grad_padded
    height, width = g.shape[2] - 2 * k, g.shape[3] - 2 * k
    g[:, :, k] += g[:, :, :k].sum(2)
    g[:, :, k + height - 1] += g[:, :, k + height:].sum(2)
    g = g[:, :, k:k + height]
    g[:, :, :, k] += g[:, :, :, :k].sum(3)
    g[:, :, :, k + width - 1] += g[:, :, :, k + width:].sum(3)
    return g[:, :, :, k:k + width].contiguous()


# Pixels per scatter step of the image gradient: bounds its (pixels, C, k+1) block to about 2**20 elements.
_SCATTER_ELEMENTS = 1 << 20


def _image_grad(grad, grad_channels, rows, cols, geo: _Geometry, shape, k: int) -> torch.Tensor:
    """Gradient of the image: scatter grad * A[m] * B[n] to Ipad[y0 + m, x0 + n], then fold the padding back.

    Per row offset m, one index_add of (C, k+1) blocks into `spread` (slot n of padded pixel q collects what lands on
    q + n), then one shifted sum over n; pixels go in chunks so the block stays small."""
    batch, channels, height, width = shape
    size = k + 1
    pixels = grad.shape[0]
    chunk = max(1, _SCATTER_ELEMENTS // (channels * size))
    pixel_base = geo.batch_of * geo.plane + geo.local
    spread = grad.new_zeros(batch * geo.plane, channels * size)
    block = grad.new_empty(min(chunk, pixels), channels, size)
    for start in range(0, pixels, chunk):
        stop = min(pixels, start + chunk)
        part = block[:stop - start]
        for m in range(size):
            weight = cols[start:stop] * rows[start:stop, m:m + 1]
            for c in range(channels):
                torch.mul(weight, grad_channels[c][start:stop], out=part[:, c])
            spread.index_add_(0, pixel_base[start:stop] + m * geo.padded_w, part.view(stop - start, -1))
    del block, part
    spread = spread.view(batch * geo.plane, channels, size)
    landed = spread[:, :, 0].clone()
    for n in range(1, size):
        landed[n:] += spread[:-n, :, n]
    del spread
    landed = landed.view(batch, geo.padded_h, geo.padded_w, channels).permute(0, 3, 1, 2)
    return _fold_replicate_pad(landed, k)


class _SDCFunction(torch.autograd.Function):
    """The SDC op for k >= 2; saves only its inputs and recomputes the gathers in backward."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # index_add in half precision loses sums
    def forward(ctx, image, kernel_v, kernel_h, flow):
        batch, channels, height, width = image.shape
        k = kernel_v.shape[1]
        geo = _Geometry(flow, k, height, width)
        rows = _tap_weights(kernel_v, geo.frac_y)
        cols = _tap_weights(kernel_h, geo.frac_x)
        windows = _padded_planes(image, k)
        plane_base = geo.batch_of * (channels * geo.plane) + geo.local
        out = image.new_zeros(channels, batch * height * width)
        for m in range(k + 1):
            for c in range(channels):
                patch_row = windows.index_select(0, plane_base + (c * geo.plane + m * geo.padded_w))  # (P, k+1)
                out[c].addcmul_(torch.bmm(patch_row[:, None, :], cols[:, :, None]).view(-1), rows[:, m])
        ctx.save_for_backward(image, kernel_v, kernel_h, flow)
        return out.view(channels, batch, height, width).permute(1, 0, 2, 3).contiguous()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_out):
        image, kernel_v, kernel_h, flow = ctx.saved_tensors
        need_image, need_kv, need_kh, need_flow = ctx.needs_input_grad
        batch, channels, height, width = image.shape
        k = kernel_v.shape[1]
        size = k + 1
        geo = _Geometry(flow, k, height, width)
        rows = _tap_weights(kernel_v, geo.frac_y)
        cols = _tap_weights(kernel_h, geo.frac_x)
        grad = grad_out.permute(0, 2, 3, 1).reshape(-1, channels)
        grad_channels = [grad[:, c:c + 1].contiguous() for c in range(channels)]
        grad_image = grad_kv = grad_kh = grad_flow = None
        if need_image:  # first, while no kernel gradient is held yet (keeps the peak low)
            grad_image = _image_grad(grad, grad_channels, rows, cols, geo, image.shape, k)

        if need_kv or need_kh or need_flow:
            windows = _padded_planes(image, k)
            plane_base = geo.batch_of * (channels * geo.plane) + geo.local
            grad_rows = rows.new_empty(rows.shape)
            grad_cols = cols.new_zeros(cols.shape)
            for m in range(size):
                # dot[p, n] = sum_c grad[p, c] * Ipad[c, y0 + m, x0 + n]
                dot = None
                for c in range(channels):
                    patch_row = windows.index_select(0, plane_base + (c * geo.plane + m * geo.padded_w))
                    dot = patch_row.mul_(grad_channels[c]) if dot is None else dot.addcmul_(patch_row,
                                                                                            grad_channels[c])
                grad_rows[:, m] = (dot * cols).sum(1)
                grad_cols.addcmul_(dot, rows[:, m:m + 1])
            del windows, dot
            grad_kv, grad_frac_y = _tap_weight_grads(grad_rows, kernel_v, geo.frac_y)
            grad_kh, grad_frac_x = _tap_weight_grads(grad_cols, kernel_h, geo.frac_x)
            del grad_rows, grad_cols
            if need_flow:
                grad_u = (grad_frac_x * geo.inside_x).view(batch, height, width)
                grad_v = (grad_frac_y * geo.inside_y).view(batch, height, width)
                grad_flow = torch.stack((grad_u, grad_v), dim=1)

        if not need_kv:
            grad_kv = None
        if not need_kh:
            grad_kh = None
        return grad_image, grad_kv, grad_kh, grad_flow
