"""What every adlr_hf model file shares: the base `PreTrainedModel` (output options, attention implementation, the
published folder's `auto_map`), the attention dispatch, and the tensor-parallel pieces with single-process stand-ins.

Each family folder carries this file (a symlink to `adlr_hf/models/shared/modeling_adlr.py`), because transformers'
remote code copies a model file together with the files it imports with a single dot. With adlr_hf installed the
names below are adlr_hf's own (one class object per process); in a published folder loaded with
`trust_remote_code=True` where adlr_hf is absent, the model runs on one process and the stand-ins apply. This file
imports only torch and transformers outside the `try` below.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

try:  # Tensor-parallel pieces; without adlr_hf installed the model runs on one process.
    from adlr_hf.parallel import TensorParallelMixin, lm_cross_entropy, tp_rng_fork
    from adlr_hf.registry import family_auto_map
except ImportError:  # pragma: no cover - exercised by the remote-code tests in a clean interpreter
    import contextlib

    class TensorParallelMixin:  # noqa: D101 - TP=1: nothing to shard
        pass

    def lm_cross_entropy(logits, target, head=None, ignore_index=-100):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1),
                               ignore_index=ignore_index)

    tp_rng_fork = contextlib.nullcontext

    def family_auto_map(model):
        return {}  # a published folder's config.json already lists every Auto class of its family

__all__ = ["AdlrAttention", "AdlrPreTrainedModel", "TensorParallelMixin", "eager_attention_forward",
           "init_megatron_weights", "lm_cross_entropy", "tp_rng_fork"]


class AdlrPreTrainedModel(TensorParallelMixin, PreTrainedModel):
    """The base of every family's `<X>PreTrainedModel`: what transformers' own models decide the same way.

    - `output_options(...)`: an explicit `output_attentions` / `output_hidden_states` / `return_dict` argument wins,
      else the config's value (`return_dict=None` means `config.return_dict`, True unless set otherwise).
    - The attention implementation is the config's (`attn_implementation="sdpa"` by default, `"eager"` computes and
      returns the attention probabilities); attention modules subclass `AdlrAttention`. A family with attention
      sets `_has_attention = _supports_sdpa = True`.
    - `save_pretrained` lists every Auto class of the family in `auto_map`, so a published folder loads through
      each of them with `trust_remote_code=True`.
    """

    _has_attention = False
    # Our attention masks are additive 4-D tensors built by the model; flash and flex kernels need transformers'
    # own mask functions (2-D padding masks, block masks), and inference back ends rely on those too.
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = False

    def output_options(self, output_attentions=None, output_hidden_states=None, return_dict=None):
        """(output_attentions, output_hidden_states, return_dict) for this forward: the argument, else the config."""
        config = self.config
        attentions = config.output_attentions if output_attentions is None else output_attentions
        hidden = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        as_dict = config.return_dict if return_dict is None else return_dict
        if attentions and not self._has_attention:
            raise ValueError(f"{type(self).__name__} has no attention layers, so output_attentions=True has nothing "
                             "to return; leave it False (output_hidden_states=True gives the hidden states)")
        if attentions and config._attn_implementation != "eager":
            raise ValueError(f"output_attentions=True needs the eager attention implementation, but the model runs "
                             f"attn_implementation={config._attn_implementation!r}, which does not compute the "
                             "attention probabilities; load it with attn_implementation='eager' or call "
                             "model.set_attn_implementation('eager')")
        return bool(attentions), bool(hidden), as_dict is not False

    def get_correct_attn_implementation(self, requested_attention, is_init_check=False):
        # A config that asks for attention probabilities defaults to the implementation that computes them.
        if requested_attention is None and self._has_attention and self.config.output_attentions:
            requested_attention = "eager"
        return super().get_correct_attn_implementation(requested_attention, is_init_check)

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        # transformers writes the new size into the config after resizing the weights: a config that cannot take
        # it would leave embedding and config disagreeing, so check that it can before any weight changes.
        self.get_input_embeddings()  # a model without token embeddings refuses here (NotImplementedError)
        text_config = self.config.get_text_config()
        try:
            text_config.vocab_size = text_config.vocab_size
        except AttributeError as err:
            raise ValueError(f"{type(text_config).__name__}.vocab_size cannot be set ({err}), so "
                             f"{type(self).__name__} cannot resize its token embeddings") from err
        return super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers writes `auto_map` for the saved class only; a published folder must load through every Auto
        # class the family registers (AutoModel from a causal-LM folder, fill-mask from a pretraining folder, ...).
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **family_auto_map(self)}
        return super().save_pretrained(save_directory, *args, **kwargs)


@torch.no_grad()
def init_megatron_weights(module: nn.Module, std: float, num_layers: int) -> None:
    """Megatron-LM's initialisation of one module: N(0, σ) weights and zero biases, σ/√(2L) for the residual output
    projections (marked `_is_residual_projection`), N(0, σ) embeddings, unit layer norms."""
    from transformers import initialization as init

    if isinstance(module, nn.Linear):
        if getattr(module, "_is_residual_projection", False):
            std = std / math.sqrt(2.0 * num_layers)
        init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        init.normal_(module.weight, mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm):
        init.ones_(module.weight)
        init.zeros_(module.bias)


def eager_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                            **kwargs):
    """softmax(Q·Kᵀ·scale + mask)·V, returning (context [b, s, heads, d], probabilities [b, heads, q, k]) as
    transformers' eager attention does. `is_causal` without a mask hides later keys, as SDPA's flag does."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    elif is_causal and query.shape[2] > 1:
        causal = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=query.device).tril()
        scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    probabilities = F.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    if dropout:
        probabilities = F.dropout(probabilities, p=dropout)
    context = torch.matmul(probabilities, value).transpose(1, 2).contiguous()
    return context, probabilities


class AdlrAttention(nn.Module):
    """Base of the families' self-attention: `attend` runs the implementation the config names (transformers'
    `ALL_ATTENTION_FUNCTIONS`, e.g. "sdpa"; "eager" is `eager_attention_forward`), with the attention dropout drawn
    from the per-TP-rank RNG stream. Heads are whatever this rank holds."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.head_dim = config.head_dim
        self.attention_dropout = config.attention_dropout

    def attend(self, query, key, value, attention_mask=None, is_causal=False):
        """query/key/value [b, heads, s, d] -> (context [b, s, heads·d], probabilities or None)."""
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        dropout = self.attention_dropout if self.training else 0.0
        with tp_rng_fork():  # attention-prob dropout acts on this rank's heads: per-TP-rank stream
            context, probabilities = attention(self, query, key, value, attention_mask, dropout=dropout,
                                               scaling=None, is_causal=is_causal)
        return context.reshape(*context.shape[:2], -1), probabilities
