"""The multiplicative-LSTM byte-level language model (the mLSTM baseline of arXiv 1812.01207).

Papers: Krause et al., "Multiplicative LSTM for sequence modelling", arXiv 1609.07959; Kant et al., "Practical Text
Classification With Large Pre-Trained Language Models", arXiv 1812.01207. Reference: NVIDIA/sentiment-discovery
`model/RNN_utils/RNN/cells.py` (`mLSTMCell`), `model/model.py` (`RNNModel`, `RNNFeaturizer`).

One step of the cell (gate order i, f, g, o as the reference's `igates.chunk(4, 1)`):

    m_t = (W_mx x_t) ⊙ (W_mh h_{t-1})
    [i, f, g, o] = W_x x_t + b_x + W_m m_t + b_m
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g)
    h_t = σ(o) ⊙ tanh(c_t)

Padding: at a padding position the state is carried over unchanged, so the state after the last timestep is the
state at the last real byte for left- and right-padded batches alike, and a left-padded row starts from the zero
state exactly like the unpadded one.
Deviations from the reference: no weight normalisation on the recurrent weights (the reference applies it through
`reparameterization/`; it changes the parametrisation, not the function), and no truncated-BPTT state carried
across batches (every sequence starts from the zero state, as the classifier in the reference does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import CausalLMOutput
from transformers.utils import ModelOutput

from .configuration_mlstm import MLSTMConfig

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.shared.modeling_adlr import AdlrPreTrainedModel
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries modeling_adlr.py
    from .modeling_adlr import AdlrPreTrainedModel


def shifted_lm_targets(labels: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Next-token targets aligned with the logits: position t predicts labels[t + 1]; the last position and every
    pair that touches padding (a pad input or a pad target) get -100, so the loss of a padded row equals the
    unpadded one's."""
    targets = labels[:, 1:]
    if attention_mask is not None:
        real = attention_mask.bool()
        targets = targets.masked_fill(~(real[:, 1:] & real[:, :-1]), -100)
    return F.pad(targets, (0, 1), value=-100)


@dataclass
class MLSTMModelOutput(ModelOutput):
    """`last_hidden_state` / `cell_states`: the top layer's h_t / c_t at every position [B, T, H];
    `final_hidden` / `final_cell`: the top layer's state after the last real byte [B, H]."""

    last_hidden_state: torch.Tensor | None = None
    cell_states: torch.Tensor | None = None
    final_hidden: torch.Tensor | None = None
    final_cell: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class MLSTMLayer(GradientCheckpointingLayer):
    """One mLSTM layer. Parameter names follow the reference cell: `input_proj` = (w_ih, b_ih), `hidden_proj` =
    (w_hh, b_hh) acting on m_t, `mult_input` = w_mih, `mult_hidden` = w_mhh. With activation checkpointing the
    layer keeps only its input and recomputes its recurrence in backward."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.input_proj = nn.Linear(input_size, 4 * hidden_size)
        self.hidden_proj = nn.Linear(hidden_size, 4 * hidden_size)
        self.mult_input = nn.Linear(input_size, hidden_size, bias=False)
        self.mult_hidden = nn.Linear(hidden_size, hidden_size, bias=False)

    def cell(self, x_gates, x_mult, h, c):
        """One step, given this step's input projections W_x x_t + b_x and W_mx x_t."""
        m = x_mult * self.mult_hidden(h)
        i, f, g, o = (x_gates + self.hidden_proj(m)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def forward(self, x, mask=None):
        batch, length, _ = x.shape
        # The input projections of every step at once; only the recurrent ones run inside the loop.
        x_gates, x_mult = self.input_proj(x), self.mult_input(x)
        h = x.new_zeros(batch, self.hidden_size)
        c = x.new_zeros(batch, self.hidden_size)
        hs, cs = [], []
        for t in range(length):
            h_new, c_new = self.cell(x_gates[:, t], x_mult[:, t], h, c)
            if mask is not None:
                keep = mask[:, t, None]
                h_new, c_new = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
            h, c = h_new, c_new
            hs.append(h)
            cs.append(c)
        return torch.stack(hs, 1), torch.stack(cs, 1)


class MLSTMPreTrainedModel(AdlrPreTrainedModel):
    config_class = MLSTMConfig
    config: MLSTMConfig
    base_model_prefix = "mlstm"
    _no_split_modules = ["MLSTMLayer"]
    supports_gradient_checkpointing = True

    @torch.no_grad()
    def _init_weights(self, module):
        """The reference's rules: embedding N(0, 1) (nn.Embedding's default); every recurrent weight and bias
        U(-1/√H, 1/√H) (RNNCell.reset_parameters); the LM decoder as nn.Linear with a zero bias (RNNModel).
        With `initializer_range` set: N(0, initializer_range) weights and zero biases instead."""
        std = self.config.initializer_range
        if isinstance(module, MLSTMLayer):
            bound = 1.0 / math.sqrt(module.hidden_size)
            for param in module.parameters():
                init.normal_(param, 0.0, std) if std else init.uniform_(param, -bound, bound)
            if std:
                init.zeros_(module.input_proj.bias)
                init.zeros_(module.hidden_proj.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, 0.0, std or 1.0)
        elif isinstance(module, nn.Linear) and getattr(module, "_is_lm_decoder", False):
            bound = 1.0 / math.sqrt(module.in_features)
            init.normal_(module.weight, 0.0, std) if std else init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                init.zeros_(module.bias)


class MLSTMModel(MLSTMPreTrainedModel):
    def __init__(self, config: MLSTMConfig):
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.dropout = nn.Dropout(config.dropout)
        sizes = [config.embedding_size] + [config.hidden_size] * config.num_layers
        self.layers = nn.ModuleList(MLSTMLayer(sizes[i], config.hidden_size) for i in range(config.num_layers))
        self.post_init()

    def get_input_embeddings(self):
        return self.embedding

    def set_input_embeddings(self, value):
        self.embedding = value

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embedding(input_ids)
        mask = attention_mask.bool() if attention_mask is not None and not bool(attention_mask.all()) else None
        hidden = self.dropout(inputs_embeds)
        all_hidden = []
        cells = None
        for layer in self.layers:
            hidden, cells = layer(hidden, mask)
            if output_hidden_states:
                all_hidden.append(hidden)
        # With padding frozen, the state after the last step is the state at the last real byte.
        out = MLSTMModelOutput(last_hidden_state=hidden, cell_states=cells, final_hidden=hidden[:, -1],
                               final_cell=cells[:, -1], hidden_states=tuple(all_hidden) if output_hidden_states else None)
        return out if return_dict else out.to_tuple()


class MLSTMForCausalLM(MLSTMPreTrainedModel):
    """Next-byte LM (the reference's `RNNModel` with an mLSTM): logits over the 257 ids at every position."""

    accepts_loss_kwargs = False

    def __init__(self, config: MLSTMConfig):
        super().__init__(config)
        self.mlstm = MLSTMModel(config)
        self.output_dropout = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.lm_head._is_lm_decoder = True
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def generate(self, *args, **kwargs):
        # transformers' generate() feeds only the new tokens after the first step, expecting a cache; the mLSTM
        # keeps no recurrent-state cache, so it would continue from the zero state and produce wrong bytes.
        raise NotImplementedError(f"{type(self).__name__} has no generation support (no recurrent-state cache for "
                                  "generate()); score text with forward(), or sample byte by byte from its logits")

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        """`labels` are the input ids (shifted inside, GPT-2 style); -100 and padding positions are ignored."""
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        outputs = self.mlstm(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                             output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.lm_head(self.output_dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            targets = shifted_lm_targets(labels.to(logits.device), attention_mask)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
        out = CausalLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return out if return_dict else out.to_tuple()
