"""Megatron-GPT as a transformers model.

Paper: Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism",
arXiv 1909.08053. Reference: NVIDIA/Megatron-LM (`model/gpt2_modeling.py`, `mpu/transformer.py`).

The architecture uses plain `nn.Linear` / `nn.Embedding` with Megatron's role names; tensor parallelism is applied
by `adlr_hf.parallel.apply_tp_plan` from the config's `base_model_tp_plan`, never by branching in `forward`.
Attention heads are inferred from the projection width, so the same code runs on all heads or on a TP rank's share.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)

from .configuration_megatron_gpt import MegatronGPTConfig

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.shared.modeling_adlr import AdlrAttention, AdlrPreTrainedModel, init_megatron_weights, lm_cross_entropy
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries modeling_adlr.py
    from .modeling_adlr import AdlrAttention, AdlrPreTrainedModel, init_megatron_weights, lm_cross_entropy


class MegatronGPTAttention(AdlrAttention):
    """Causal self-attention with a fused [Q; K; V] projection (Megatron's `query_key_value`); the attention itself
    is the config's implementation (SDPA by default). Returns (output, attention probabilities or None)."""

    def __init__(self, config: MegatronGPTConfig, layer_idx: int):
        super().__init__(config)
        self.layer_idx = layer_idx
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dense._is_residual_projection = True

    def forward(self, hidden, attn_mask=None, cache: Cache | None = None):
        batch, length, _ = hidden.shape
        query, key, value = self.query_key_value(hidden).chunk(3, dim=-1)
        # [b, s, heads*d] -> [b, heads, s, d]; `heads` is whatever this rank holds.
        query, key, value = (t.view(batch, length, -1, self.head_dim).transpose(1, 2) for t in (query, key, value))
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        # Without an explicit mask and without past keys the causal mask is the kernel's own (SDPA's fastest path).
        is_causal = attn_mask is None and key.shape[2] == length and length > 1
        context, probabilities = self.attend(query, key, value, attn_mask, is_causal)
        return self.dense(context), probabilities


class MegatronGPTMLP(nn.Module):
    def __init__(self, config: MegatronGPTConfig):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(config.hidden_size, config.ffn_hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.dense_4h_to_h = nn.Linear(config.ffn_hidden_size, config.hidden_size)
        self.dense_4h_to_h._is_residual_projection = True

    def forward(self, hidden):
        return self.dense_4h_to_h(self.act(self.dense_h_to_4h(hidden)))


class MegatronGPTBlock(GradientCheckpointingLayer):
    """Pre-LN transformer layer: x + Attn(LN(x)), then + MLP(LN(·)). `activation_checkpointing_enable()` recomputes
    it in backward (Megatron's `--checkpoint-activations`)."""

    def __init__(self, config: MegatronGPTConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.self_attention = MegatronGPTAttention(config, layer_idx)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = MegatronGPTMLP(config)
        self.hidden_dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden, attn_mask=None, cache=None):
        """Returns (hidden, attention probabilities or None)."""
        attended, probabilities = self.self_attention(self.input_layernorm(hidden), attn_mask, cache)
        hidden = hidden + self.hidden_dropout(attended)
        return hidden + self.hidden_dropout(self.mlp(self.post_attention_layernorm(hidden))), probabilities


class MegatronGPTPreTrainedModel(AdlrPreTrainedModel):
    config_class = MegatronGPTConfig
    config: MegatronGPTConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MegatronGPTBlock"]
    _has_attention = True
    _supports_sdpa = True
    _keys_to_ignore_on_load_unexpected = [r"\.masked_bias$", r"\.attn\.bias$"]

    @torch.no_grad()
    def _init_weights(self, module):
        """N(0, σ) for weights, σ/√(2L) for the two residual output projections, zero biases (Megatron-LM)."""
        init_megatron_weights(module, self.config.initializer_range, self.config.num_layers)


def _position_ids(attention_mask, past_length: int, length: int, device) -> torch.Tensor:
    """Positions count real tokens only, so left-padded prompts get the positions an unpadded one would."""
    if attention_mask is not None and attention_mask.dim() == 4:
        # A prepared [b, 1, q, k] mask: a query's position is the number of keys it sees, minus one.
        visible = attention_mask[:, 0] if attention_mask.dtype == torch.bool else attention_mask[:, 0] == 0
        return (visible.sum(-1) - 1).clamp(min=0)
    if attention_mask is not None and not bool(attention_mask.all()):
        positions = attention_mask.long().cumsum(-1) - 1
        return positions.clamp(min=0)[:, past_length : past_length + length]
    return torch.arange(past_length, past_length + length, device=device).unsqueeze(0)


def _attention_bias(attention_mask, past_length: int, length: int, key_length: int, dtype, device):
    """Additive [b, 1, q, key_length] mask (causal ∧ not padding), or None when SDPA needs none.

    `key_length` exceeds past + length for a static cache, whose keys span the whole preallocated length: the
    causal rule also hides its unfilled slots. Masked entries get the dtype's minimum rather than -inf, so a row with
    no visible key (a left-padding query) softmaxes to a uniform row instead of NaN; such rows are never used for
    real tokens.
    """
    if attention_mask is not None and attention_mask.dim() == 4:  # already [b, 1, q, k], e.g. from generate()
        if attention_mask.dtype != torch.bool:
            return attention_mask.to(dtype)
        return torch.zeros(attention_mask.shape, dtype=dtype, device=device).masked_fill(
            ~attention_mask, torch.finfo(dtype).min)
    total = past_length + length
    has_padding = attention_mask is not None and not bool(attention_mask[:, :total].all())
    if not has_padding and key_length == total and (past_length == 0 or length == 1):
        return None
    key_pos = torch.arange(key_length, device=device)
    query_pos = torch.arange(past_length, total, device=device)
    allowed = (key_pos[None, :] <= query_pos[:, None])[None, None]
    if has_padding:
        padding = attention_mask[:, :total].bool()
        padding = F.pad(padding, (0, key_length - padding.shape[1]), value=True)  # later slots: causally hidden
        allowed = allowed & padding[:, None, None, :]
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)


class MegatronGPTModel(MegatronGPTPreTrainedModel):
    def __init__(self, config: MegatronGPTConfig):
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.layers = nn.ModuleList(MegatronGPTBlock(config, i) for i in range(config.num_layers))
        self.final_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.post_init()

    def get_input_embeddings(self):
        return self.word_embeddings

    def set_input_embeddings(self, value):
        self.word_embeddings = value

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                past_key_values=None, **kwargs):
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        cache = cache if cache is not None else past_key_values
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.training and torch.is_grad_enabled() and any(layer.gradient_checkpointing for layer in self.layers):
            use_cache = False  # a recomputed layer would write its keys and values into the cache a second time
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if not use_cache:
            cache = None
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, length = inputs_embeds.shape[:2]
        past = cache.get_seq_length() if cache is not None else 0
        if past + length > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {past + length} exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}; shorten the input or raise the limit."
            )
        if position_ids is None:
            position_ids = _position_ids(attention_mask, past, length, inputs_embeds.device)
        hidden = self.embedding_dropout(inputs_embeds + self.position_embeddings(position_ids))
        key_length = past + length
        if cache is not None and cache.is_compileable:  # a static cache returns its whole preallocated length
            key_length = cache.get_mask_sizes(length, 0)[0]
        attn_mask = _attention_bias(attention_mask, past, length, key_length, hidden.dtype, hidden.device)
        all_hidden, all_attentions = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden)
            hidden, probabilities = layer(hidden, attn_mask, cache)
            if output_attentions:
                all_attentions.append(probabilities)
        hidden = self.final_layernorm(hidden)
        if output_hidden_states:
            all_hidden.append(hidden)
        out = BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache,
                                      hidden_states=tuple(all_hidden) if output_hidden_states else None,
                                      attentions=tuple(all_attentions) if output_attentions else None)
        return out if return_dict else out.to_tuple()


def _version_or_none(tensor: torch.Tensor) -> int | None:
    """The in-place version counter; None for inference tensors, which have none."""
    try:
        return tensor._version
    except RuntimeError:
        return None


class MegatronGPTForCausalLM(MegatronGPTPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "transformer.word_embeddings.weight"}
    _tp_plan = {"lm_head": "vocab_lm_head"}
    accepts_loss_kwargs = False
    DECODE_ROWS = 16  # up to this many tokens per forward, without autograd, the head reads its [in, out] copy

    def __init__(self, config: MegatronGPTConfig):
        super().__init__(config)
        self.transformer = MegatronGPTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def _vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head, with a faster layout for decoding.

        Decoding a few tokens is a matrix-vector product that streams the whole [vocab, hidden] weight from memory.
        MKL streams an [in, out] matrix (`x @ W_t`) about 1.6x faster than the [out, in] one `nn.Linear` keeps
        (5.1 vs 8.2 ms per token for GPT-2 small's head on one core), so without autograd and for at most
        `DECODE_ROWS` rows a CPU head reads a transposed copy of its weight. The copy (vocab x hidden values) is made
        once and rebuilt whenever the weight changes; `train()` and `eval()` drop it. Training, prefill, GPUs
        (whose GEMV does not care) and tensor-parallel heads (ours or transformers') use the weight itself.
        """
        head = self.lm_head
        if (torch.is_grad_enabled() or type(head) is not nn.Linear or head.bias is not None
                or head.weight.device.type != "cpu" or hidden.shape[:-1].numel() > self.DECODE_ROWS
                or type(head.weight.data) is not torch.Tensor or head._forward_hooks or head._forward_pre_hooks):
            return head(hidden)  # (a DTensor or hooked head belongs to transformers' own tensor parallelism)
        weight = head.weight
        version = _version_or_none(weight)
        # Inference tensors have no version counter, and ZeRO-3 swaps gathered storage in and out: in both cases
        # nothing would tell when the copy goes stale.
        if version is None or hasattr(weight, "ds_id"):
            return head(hidden)
        key = (weight.data_ptr(), weight.dtype, weight.device, version)
        cached = self.__dict__.get("_decode_head_columns")
        if cached is None or cached[0] != key:
            self.__dict__["_decode_head_columns"] = cached = (key, weight.detach().t().contiguous())
        return hidden @ cached[1]

    def train(self, mode: bool = True):
        self.__dict__.pop("_decode_head_columns", None)
        return super().train(mode)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                logits_to_keep=0, past_key_values=None, **kwargs):
        """`labels` are the input ids (shifted inside, as in GPT-2); -100 marks positions to ignore.

        In training mode under TP>1 the returned `logits` are this rank's vocabulary slice (the loss never gathers
        them); in eval mode they cover the whole vocabulary at any TP degree.
        """
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        outputs = self.transformer(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                   cache=cache if cache is not None else past_key_values, inputs_embeds=inputs_embeds,
                                   use_cache=use_cache, output_attentions=output_attentions,
                                   output_hidden_states=output_hidden_states, return_dict=True)
        hidden = outputs.last_hidden_state
        if logits_to_keep and labels is None:
            hidden = hidden[:, -logits_to_keep:]
        logits = self._vocab_logits(hidden)
        loss = None
        if labels is not None:
            # Shift the labels rather than slice the logits: the same mean over the same targets, but the [b, s, V]
            # logits are read in place and backward needs no zero-padded copy of their gradient.
            labels = F.pad(labels[:, 1:].to(logits.device), (0, 1), value=-100)
            loss = lm_cross_entropy(logits, labels, head=self.lm_head)
        out = CausalLMOutputWithPast(loss=loss, logits=logits, cache=outputs.cache,
                                     hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return out if return_dict else out.to_tuple()


def last_token_index(input_ids, attention_mask, pad_token_id) -> torch.Tensor:
    """Index of the last real token of each row, for left- or right-padded batches."""
    if attention_mask is not None:
        real = attention_mask.bool()
    elif pad_token_id is not None and input_ids is not None:
        real = input_ids != pad_token_id
    else:
        length = (input_ids if input_ids is not None else attention_mask).shape[1]
        return torch.full((input_ids.shape[0],), length - 1, dtype=torch.long, device=input_ids.device)
    positions = torch.arange(real.shape[1], device=real.device).expand_as(real)
    return positions.masked_fill(~real, -1).max(dim=1).values.clamp(min=0)


def pool_last_token(hidden, input_ids, attention_mask, pad_token_id) -> torch.Tensor:
    """The top-layer state [b, h] at each row's last real token (the last position when nothing marks padding)."""
    if attention_mask is None and (input_ids is None or pad_token_id is None):
        return hidden[:, -1]
    index = last_token_index(input_ids, attention_mask, pad_token_id)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


class MegatronGPTForSequenceClassification(MegatronGPTPreTrainedModel):
    """Classifier on the top-layer state at the last real token (the pooling of arXiv 1812.01207)."""

    accepts_loss_kwargs = False

    def __init__(self, config: MegatronGPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = MegatronGPTModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, labels=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        outputs = self.transformer(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                   inputs_embeds=inputs_embeds, use_cache=False, output_attentions=output_attentions,
                                   output_hidden_states=output_hidden_states, return_dict=True)
        pooled = pool_last_token(outputs.last_hidden_state, input_ids, attention_mask, self.config.pad_token_id)
        logits = self.score(pooled)
        # transformers' ForSequenceClassification loss: regression / single-label / multi-label by problem_type.
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        out = SequenceClassifierOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                               attentions=outputs.attentions)
        return out if return_dict else out.to_tuple()
