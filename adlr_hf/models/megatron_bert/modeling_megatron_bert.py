"""Megatron-BERT as a transformers model.

Paper: Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism",
arXiv 1909.08053 (section 3.2 / Figure 7: layer-norm reordering). Reference: NVIDIA/Megatron-LM
(`megatron/model/bert_model.py`, `megatron/model/transformer.py`, `--apply-residual-connection-post-layernorm`).

Plain `nn.Linear` / `nn.Embedding` with Megatron's role names; tensor parallelism comes from the config's
`base_model_tp_plan` (adlr_hf.parallel.apply_tp_plan). Heads are inferred from the projection width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, MaskedLMOutput, SequenceClassifierOutput
from transformers.utils import ModelOutput

from .configuration_megatron_bert import AdlrMegatronBertConfig

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.shared.modeling_adlr import AdlrAttention, AdlrPreTrainedModel, init_megatron_weights, lm_cross_entropy
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries modeling_adlr.py
    from .modeling_adlr import AdlrAttention, AdlrPreTrainedModel, init_megatron_weights, lm_cross_entropy


class MegatronBertAttention(AdlrAttention):
    """Bidirectional self-attention with a fused [Q; K; V] projection; the attention itself is the config's
    implementation (SDPA by default). Returns (output, attention probabilities or None)."""

    def __init__(self, config: AdlrMegatronBertConfig):
        super().__init__(config)
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden, attn_bias=None):
        batch, length, _ = hidden.shape
        query, key, value = self.query_key_value(hidden).chunk(3, dim=-1)
        query, key, value = (t.view(batch, length, -1, self.head_dim).transpose(1, 2) for t in (query, key, value))
        context, probabilities = self.attend(query, key, value, attn_bias, is_causal=False)
        return self.dense(context), probabilities


class MegatronBertMLP(nn.Module):
    def __init__(self, config: AdlrMegatronBertConfig):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(config.hidden_size, config.ffn_hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.dense_4h_to_h = nn.Linear(config.ffn_hidden_size, config.hidden_size)

    def forward(self, hidden):
        return self.dense_4h_to_h(self.act(self.dense_h_to_4h(hidden)))


class MegatronBertLayer(GradientCheckpointingLayer):
    """Pre-LN: x + Attn(LN(x)), then + MLP(LN(·)). Post-LN (original BERT): LN(x + Attn(x)), then LN(· + MLP(·)).
    `activation_checkpointing_enable()` recomputes it in backward (Megatron's `--checkpoint-activations`)."""

    def __init__(self, config: AdlrMegatronBertConfig):
        super().__init__()
        self.pre_ln = config.layernorm_position == "pre"
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.attention = MegatronBertAttention(config)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = MegatronBertMLP(config)
        self.hidden_dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden, attn_bias=None):
        """Returns (hidden, attention probabilities or None)."""
        if self.pre_ln:
            attended, probabilities = self.attention(self.input_layernorm(hidden), attn_bias)
            hidden = hidden + self.hidden_dropout(attended)
            return hidden + self.hidden_dropout(self.mlp(self.post_attention_layernorm(hidden))), probabilities
        # Post-LN: `input_layernorm` follows the attention residual, `post_attention_layernorm` the MLP residual.
        attended, probabilities = self.attention(hidden, attn_bias)
        hidden = self.input_layernorm(hidden + self.hidden_dropout(attended))
        return self.post_attention_layernorm(hidden + self.hidden_dropout(self.mlp(hidden))), probabilities


class MegatronBertPreTrainedModel(AdlrPreTrainedModel):
    config_class = AdlrMegatronBertConfig
    config: AdlrMegatronBertConfig
    base_model_prefix = "bert"
    _no_split_modules = ["MegatronBertLayer"]
    _has_attention = True
    _supports_sdpa = True
    supports_gradient_checkpointing = True

    @torch.no_grad()
    def _init_weights(self, module):
        """N(0, σ) weights, zero biases, unit layer norms; output projections σ/√(2L) as in Megatron-LM."""
        init_megatron_weights(module, self.config.initializer_range, self.config.num_layers)

    def _encode(self, inputs: dict, output_attentions, output_hidden_states, return_dict):
        """A head's forward: the encoder's outputs (with the requested attentions / hidden states) and whether the
        head returns a `ModelOutput` (the argument, else the config)."""
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        outputs = self.bert(**inputs, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                            return_dict=True)
        return outputs, return_dict


def _padding_bias(attention_mask, dtype):
    """Additive [b, 1, 1, k] mask hiding padded keys, or None when nothing is padded."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return ((1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min).to(dtype)


class MegatronBertModel(MegatronBertPreTrainedModel):
    def __init__(self, config: AdlrMegatronBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.tokentype_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        # Original BERT normalises the embeddings; the pre-LN model normalises the output of the stack instead.
        norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.embedding_layernorm = norm if config.layernorm_position == "post" else None
        self.final_layernorm = norm if config.layernorm_position == "pre" else None
        self.embedding_dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(MegatronBertLayer(config) for _ in range(config.num_layers))
        for layer in self.layers:
            layer.attention.dense._is_residual_projection = True
            layer.mlp.dense_4h_to_h._is_residual_projection = True
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.word_embeddings

    def set_input_embeddings(self, value):
        self.word_embeddings = value

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, length = inputs_embeds.shape[:2]
        if length > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {length} exceeds max_position_embeddings="
                             f"{self.config.max_position_embeddings}; truncate the input.")
        if position_ids is None:
            position_ids = torch.arange(length, device=inputs_embeds.device).unsqueeze(0)
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, length), dtype=torch.long, device=inputs_embeds.device)
        hidden = inputs_embeds + self.position_embeddings(position_ids) + self.tokentype_embeddings(token_type_ids)
        if self.embedding_layernorm is not None:
            hidden = self.embedding_layernorm(hidden)
        hidden = self.embedding_dropout(hidden)
        attn_bias = _padding_bias(attention_mask, hidden.dtype)
        all_hidden, all_attentions = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden)
            hidden, probabilities = layer(hidden, attn_bias)
            if output_attentions:
                all_attentions.append(probabilities)
        if self.final_layernorm is not None:
            hidden = self.final_layernorm(hidden)
        if output_hidden_states:
            all_hidden.append(hidden)
        pooled = torch.tanh(self.pooler(hidden[:, 0])) if self.pooler is not None else None
        out = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled,
                                         hidden_states=tuple(all_hidden) if output_hidden_states else None,
                                         attentions=tuple(all_attentions) if output_attentions else None)
        return out if return_dict else out.to_tuple()


class MegatronBertLMHead(nn.Module):
    """dense → activation → LN → decoder tied to the word embeddings, plus a per-token bias."""

    def __init__(self, config: AdlrMegatronBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.head_hidden_act or config.hidden_act]
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)

    def forward(self, hidden):
        return self.decoder(self.layernorm(self.act(self.dense(hidden))))


class _TiedLMHead:
    """The output embeddings of a head model whose `lm_head.decoder` is tied to the word embeddings."""

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.lm_head.decoder = new_embeddings


@dataclass
class MegatronBertForPreTrainingOutput(ModelOutput):
    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    sop_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    sop_logits: torch.Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


class MegatronBertForMaskedLM(_TiedLMHead, MegatronBertPreTrainedModel):
    _tied_weights_keys = {"lm_head.decoder.weight": "bert.word_embeddings.weight"}
    _tp_plan = {"lm_head.decoder": "vocab_lm_head"}
    accepts_loss_kwargs = False

    def __init__(self, config: AdlrMegatronBertConfig):
        super().__init__(config)
        self.bert = MegatronBertModel(config, add_pooling_layer=False)
        self.lm_head = MegatronBertLMHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        """`labels`: token ids at masked positions and -100 elsewhere (no shift). Under TP>1 in training mode the
        returned logits are this rank's vocabulary slice; in eval mode they cover the whole vocabulary."""
        outputs, return_dict = self._encode(
            dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                 position_ids=position_ids, inputs_embeds=inputs_embeds),
            output_attentions, output_hidden_states, return_dict)
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = lm_cross_entropy(logits, labels.to(logits.device), head=self.lm_head.decoder)
        out = MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                             attentions=outputs.attentions)
        return out if return_dict else out.to_tuple()


class MegatronBertForPreTraining(_TiedLMHead, MegatronBertPreTrainedModel):
    """Masked LM plus the binary sentence-order prediction (SOP) head Megatron-BERT pre-trains with."""

    _tied_weights_keys = {"lm_head.decoder.weight": "bert.word_embeddings.weight"}
    _tp_plan = {"lm_head.decoder": "vocab_lm_head"}
    accepts_loss_kwargs = False

    def __init__(self, config: AdlrMegatronBertConfig):
        super().__init__(config)
        self.bert = MegatronBertModel(config, add_pooling_layer=True)
        self.lm_head = MegatronBertLMHead(config)
        self.binary_head = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, sentence_order_label=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        """`labels`: MLM targets (-100 where not masked); `sentence_order_label`: 0 in order, 1 swapped."""
        outputs, return_dict = self._encode(
            dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                 position_ids=position_ids, inputs_embeds=inputs_embeds),
            output_attentions, output_hidden_states, return_dict)
        logits = self.lm_head(outputs.last_hidden_state)
        sop_logits = self.binary_head(outputs.pooler_output)
        mlm_loss = sop_loss = loss = None
        if labels is not None:
            mlm_loss = lm_cross_entropy(logits, labels.to(logits.device), head=self.lm_head.decoder)
            loss = mlm_loss
        if sentence_order_label is not None:
            sop_loss = F.cross_entropy(sop_logits, sentence_order_label.view(-1))
            loss = sop_loss if loss is None else loss + sop_loss
        out = MegatronBertForPreTrainingOutput(loss=loss, mlm_loss=mlm_loss, sop_loss=sop_loss, logits=logits,
                                               sop_logits=sop_logits, hidden_states=outputs.hidden_states,
                                               attentions=outputs.attentions)
        return out if return_dict else out.to_tuple()


class MegatronBertForSequenceClassification(MegatronBertPreTrainedModel):
    """Classifier on the pooled [CLS] state (dense + tanh), as BERT fine-tuning does."""

    accepts_loss_kwargs = False

    def __init__(self, config: AdlrMegatronBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = MegatronBertModel(config, add_pooling_layer=True)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        outputs, return_dict = self._encode(
            dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                 position_ids=position_ids, inputs_embeds=inputs_embeds),
            output_attentions, output_hidden_states, return_dict)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        # transformers' ForSequenceClassification loss: regression / single-label / multi-label by problem_type.
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                       attentions=outputs.attentions)
        return out if return_dict else out.to_tuple()
