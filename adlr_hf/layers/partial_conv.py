"""Partial convolution: a convolution that renormalises each window by how much of it holds valid (mask = 1) input.

Paper: Liu et al., "Partial Convolution based Padding", arXiv 1811.11718 (and "Image Inpainting for Irregular Holes
Using Partial Convolutions", arXiv 1804.07723). Reference: NVIDIA/partialconv, `models/partialconv2d.py`.

For a window with mask sum `s` (over the kernel area, times the input channels for a multi-channel mask):

    out = (conv(x * m) - b) * ratio + b,   ratio = window_size / (s + eps) * clamp(s, 0, 1)
    out = out * clamp(s, 0, 1)             (the update mask; returned for chained use with `return_mask=True`)

With no mask the only holes are the zero padding ("partial-convolution based padding"): the ratio is 1 in the interior
(the output equals `nn.Conv2d` there) and grows towards the borders (1.5 on the edges, 2.25 in the corners of a 3×3
kernel with padding 1). This file needs only torch, so a published model folder can carry a copy of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PartialConv2d", "PartialConvMixin", "convert_to_partial_padding", "has_padding"]


class PartialConvMixin:
    """The mask arithmetic of a partial convolution, for a module with `nn.Conv2d`'s geometry attributes
    (`kernel_size`, `stride`, `padding`, `dilation`, `groups`). Shared by `PartialConv2d` and the channel-parallel
    convolutions (`adlr_hf.parallel.conv`), which renormalise the same way after their own convolution.

    Call `_init_partial(...)` in `__init__`; then `_padding_ratio(H, W, dtype, device)` (padding-only, cached) or
    `_masked_ratio(mask_in, ...)` give (ratio, update_mask[, all_valid]), and `_renormalize(raw, bias, ratio, update,
    all_valid)` turns the bias-free convolution `raw` into the partial convolution's output.
    """

    eps = 1e-8  # added to the window's mask sum in fp32 before dividing
    max_cached_sizes = 16  # padding-only ratios kept per module; the cache is cleared when it would grow past this

    def _init_partial(self, multi_channel: bool, return_mask: bool, mask_kernel_shape: tuple,
                      window_size: int) -> None:
        self.multi_channel = bool(multi_channel)
        self.return_mask = bool(return_mask)
        # The all-ones kernel that sums the mask over each window is made where it is used (`_mask_kernel`), never
        # stored: a buffer would stay empty on the meta device under `init_empty_weights` and big-model loading,
        # which never fill non-persistent buffers. (The reference keeps it as a tensor attribute re-cast in forward.)
        self.mask_kernel_shape = tuple(mask_kernel_shape)
        self.window_size = window_size
        self._ratio_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor, bool]] = {}

    def _apply(self, fn, *args, **kwargs):
        self._ratio_cache.clear()  # device/dtype moves make the cached tensors stale
        return super()._apply(fn, *args, **kwargs)

    def _mask_kernel(self, device: torch.device, single_channel: bool = False) -> torch.Tensor:
        """The fp32 all-ones window-sum kernel on `device`; `single_channel`: one output and one input channel."""
        shape = (1, 1, *self.mask_kernel_shape[2:]) if single_channel else self.mask_kernel_shape
        return torch.ones(shape, dtype=torch.float32, device=device)

    def _mask_sum(self, mask: torch.Tensor, kernel: torch.Tensor, groups: int) -> torch.Tensor:
        return F.conv2d(mask, kernel, None, self.stride, self.padding, self.dilation, groups)

    @torch.no_grad()
    def _ratio_from_sum(self, mask_sum: torch.Tensor, window_size: int, dtype: torch.dtype):
        update = mask_sum.clamp(0, 1)
        ratio = window_size / (mask_sum + self.eps) * update
        return ratio.to(dtype), update.to(dtype)

    @torch.no_grad()
    def _compute_padding_ratio(self, height: int, width: int, dtype: torch.dtype, device: torch.device):
        # The all-valid mask of any channel count gives the same ratio as a single channel, so one channel suffices.
        ones = torch.ones(1, 1, height, width, dtype=torch.float32, device=device)
        mask_sum = self._mask_sum(ones, self._mask_kernel(device, single_channel=True), 1)
        window = self.kernel_size[0] * self.kernel_size[1]
        return self._ratio_from_sum(mask_sum, window, dtype)

    def _padding_ratio(self, height: int, width: int, dtype: torch.dtype, device: torch.device):
        """(ratio, update_mask, update_mask_is_all_ones) for an all-valid input of this size; shapes (1, 1, H', W')."""
        if torch.compiler.is_compiling():  # no Python-side state while tracing: recompute inside the graph
            ratio, update = self._compute_padding_ratio(height, width, dtype, device)
            return ratio, update, False
        # Tensors made under inference_mode cannot be saved for backward later, so they get their own entry.
        key = (height, width, dtype, device, torch.is_inference_mode_enabled())
        entry = self._ratio_cache.get(key)
        if entry is None:
            ratio, update = self._compute_padding_ratio(height, width, dtype, device)
            if len(self._ratio_cache) >= self.max_cached_sizes:
                self._ratio_cache.clear()
            entry = self._ratio_cache[key] = (ratio, update, bool(update.min() >= 1))
        return entry

    @torch.no_grad()
    def _masked_ratio(self, mask_in: torch.Tensor, dtype: torch.dtype, reduce_sum=None):
        """(ratio, update_mask) for an explicit mask. `reduce_sum` (optional) completes a window sum computed over
        some of the input channels (a row-parallel convolution all-reduces it over the TP group)."""
        kernel = self._mask_kernel(mask_in.device)
        mask_sum = self._mask_sum(mask_in.float(), kernel, self.groups if self.multi_channel else 1)
        if reduce_sum is not None:
            mask_sum = reduce_sum(mask_sum)
        return self._ratio_from_sum(mask_sum, self.window_size, dtype)

    def _check_mask(self, input: torch.Tensor, mask: torch.Tensor, channels: int | None = None) -> None:
        channels = self.in_channels if channels is None else channels
        want = channels if self.multi_channel else 1
        if mask.dim() != 4 or mask.shape[1] != want or mask.shape[2:] != input.shape[2:] or \
                mask.shape[0] not in (1, input.shape[0]):
            kind = f"{channels} channels (multi_channel=True)" if self.multi_channel else \
                "1 channel (pass multi_channel=True for one mask channel per input channel)"
            raise ValueError(f"mask_in has shape {tuple(mask.shape)} but the input has shape {tuple(input.shape)}: "
                             f"the mask needs shape (N or 1, C, H, W) with {kind} and the input's H, W")

    @staticmethod
    def _renormalize(raw: torch.Tensor, bias: torch.Tensor | None, ratio: torch.Tensor, update: torch.Tensor,
                     all_valid: bool) -> torch.Tensor:
        """(raw * ratio + bias) * update in as few passes over the output as possible: one fused multiply-add
        (`addcmul`) with a bias, one in-place multiply without (no new output tensor: `raw` is always the fresh
        result of this layer's convolution, which autograd does not save); the update multiply only where it is not
        a no-op (without bias the ratio is already 0 outside the update mask; padding-only update masks are usually
        all ones)."""
        if bias is None:
            return raw.mul_(ratio)
        out = torch.addcmul(bias.to(raw.dtype).view(1, -1, 1, 1), raw, ratio)
        return out if all_valid else out * update


class PartialConv2d(PartialConvMixin, nn.Conv2d):
    """`nn.Conv2d` with partial-convolution renormalisation. Same parameters and state dict as `nn.Conv2d`.

    Extra keyword arguments:
    - `multi_channel`: the mask passed to `forward` has one channel per input channel (inpainting use); the window
      sum then runs over the kernel area and the input channels of the group. Default: one mask channel broadcast
      over all input channels.
    - `return_mask`: `forward` returns `(output, update_mask)` so the mask can be passed to the next layer.

    `forward(input, mask_in=None)`: without `mask_in` only the zero padding counts as holes; the ratio and update
    mask then depend only on the spatial size and are cached per (H, W, dtype, device) (recomputed in every call
    while `torch.compile` traces). With `mask_in` (shape (N or 1, 1 or C_in, H, W), 1 = valid) they are recomputed
    in every call. The ratio is computed in fp32 and cast once to the output dtype, so `eps` stays meaningful in
    bf16/fp16.

    The layer holds no buffers (the all-ones window-sum kernel is made on the input's device when a ratio is
    computed), so it builds on the meta device and loads like `nn.Conv2d` (`init_empty_weights`, `from_pretrained`).
    """

    def __init__(self, *args, multi_channel: bool = False, return_mask: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(f"PartialConv2d needs padding_mode='zeros' (its padding is the 'hole' it renormalises), "
                             f"got padding_mode={self.padding_mode!r}; use nn.Conv2d for {self.padding_mode!r} padding")
        # Deviation from the reference: a grouped multi-channel conv counts only its own group's mask channels
        # (grouped mask conv); the reference sums all input channels. Identical for groups=1.
        channels = self.in_channels // self.groups if multi_channel else 1
        kernel_shape = (self.out_channels if multi_channel else 1, channels, *self.kernel_size)
        self._init_partial(multi_channel, return_mask, kernel_shape,
                           channels * self.kernel_size[0] * self.kernel_size[1])

    def extra_repr(self) -> str:
        return super().extra_repr() + f", multi_channel={self.multi_channel}, return_mask={self.return_mask}"

    def forward(self, input: torch.Tensor, mask_in: torch.Tensor | None = None):
        if input.dim() != 4:
            raise ValueError(f"PartialConv2d expects a 4-D (N, C, H, W) input, got shape {tuple(input.shape)}")
        if mask_in is None:
            raw = self._conv_forward(input, self.weight, None)
            ratio, update, all_valid = self._padding_ratio(input.shape[2], input.shape[3], raw.dtype, raw.device)
            out = self._renormalize(raw, self.bias, ratio, update, all_valid)
            if self.return_mask and self.multi_channel:
                update = update.expand(input.shape[0], self.out_channels, *update.shape[2:])
        else:
            self._check_mask(input, mask_in)
            raw = self._conv_forward(input * mask_in.to(input.dtype), self.weight, None)
            ratio, update = self._masked_ratio(mask_in, raw.dtype)
            out = self._renormalize(raw, self.bias, ratio, update, all_valid=False)
        return (out, update) if self.return_mask else out


def has_padding(conv: nn.Conv2d) -> bool:
    """True when the convolution zero-pads its input (padding > 0, or "same" with a kernel larger than 1×1)."""
    if isinstance(conv.padding, str):
        return conv.padding == "same" and any(k > 1 for k in conv.kernel_size)
    return any(p > 0 for p in conv.padding)


def _partial_from_conv(conv: nn.Conv2d) -> PartialConv2d:
    with torch.device("meta"):  # skip the weight init: the parameters are taken over below
        new = PartialConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                            padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                            bias=conv.bias is not None, padding_mode="zeros")
    new.weight = conv.weight
    new.bias = conv.bias
    new.train(conv.training)
    return new


def convert_to_partial_padding(model: nn.Module) -> nn.Module:
    """Replace, in place, every `nn.Conv2d` that zero-pads (padding > 0, padding_mode "zeros") by a `PartialConv2d`
    holding the same parameter objects (optimizers and tied references stay valid). Unpadded convs (e.g. 1×1),
    other padding modes and subclasses of `nn.Conv2d` (already partial, tensor-parallel, ...) are left unchanged.
    Returns the model (the new module when `model` itself is such a conv)."""
    def convertible(module: nn.Module) -> bool:
        return type(module) is nn.Conv2d and module.padding_mode == "zeros" and has_padding(module)

    if convertible(model):
        return _partial_from_conv(model)
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if convertible(child):
                setattr(parent, name, _partial_from_conv(child))
    return model
