"""Multi-label emotion classifiers on pre-trained language models (Kant et al., "Practical Text Classification With
Large Pre-Trained Language Models", arXiv 1812.01207). Reference: NVIDIA/sentiment-discovery
`model/sentiment_classifier.py` (`SentimentClassifier`, `MultiLayerBinaryClassifier`, `threshold_predictions`),
`model/model.py` (`TransformerFeaturizer`, `RNNFeaturizer`), `finetune_classifier.py` (the losses).

    features = encoder state at the last real token     (transformer: top layer; mLSTM: final cell or hidden state)
    logits   = Linear(Dropout(PReLU(Linear(... Dropout(features)))))    one independent sigmoid per label
    loss     = BCE-with-logits(logits, labels) + aux_lm_loss_weight × next-token LM loss of the encoder

Deviations from the reference:
- one PReLU (one learned slope) per hidden layer; the reference reuses a single PReLU module in every layer.
- the auxiliary LM loss is the mean next-token loss over the real tokens; the reference's padding mask
  (`arange > length`) keeps the padded positions instead, and rescales by the unpadded share.
- the head returns logits (BCE-with-logits is the numerically stable form of the reference's Sigmoid + BCELoss).

Tensor parallelism: the transformer encoder follows the Megatron-GPT plan (prefixed with `transformer.`), the LM head
for the auxiliary loss is vocab-parallel and tied to the embedding, the classifier head stays replicated.

`EmotionModel` (`AutoModel`) is a classifier's encoder alone, under the same parameter names.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

from .configuration_emotion import ENCODER_CONFIGS, EmotionConfig

try:  # the encoder families' own classes with adlr_hf installed; a published folder's copies otherwise
    from adlr_hf.models.megatron_gpt.modeling_megatron_gpt import MegatronGPTModel, pool_last_token
    from adlr_hf.models.mlstm.modeling_mlstm import MLSTMModel, shifted_lm_targets
    from adlr_hf.models.shared.modeling_adlr import AdlrPreTrainedModel, init_megatron_weights, lm_cross_entropy
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries these files
    from .modeling_adlr import AdlrPreTrainedModel, init_megatron_weights, lm_cross_entropy
    from .modeling_megatron_gpt import MegatronGPTModel, pool_last_token
    from .modeling_mlstm import MLSTMModel, shifted_lm_targets


@dataclass
class EmotionClassifierOutput(ModelOutput):
    """`loss` = `classification_loss` + aux_lm_loss_weight × `lm_loss`; `logits` [B, num_labels] (before sigmoid)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    classification_loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class EmotionPrediction(ModelOutput):
    """`probabilities` [B, C] (sigmoid), `predictions` [B, C] 0/1 (probability > threshold), `labels`: the names of
    the predicted emotions per example."""

    probabilities: torch.Tensor | None = None
    predictions: torch.Tensor | None = None
    labels: list[list[str]] | None = None


class EmotionClassifierHead(nn.Module):
    """Dropout → [Linear → PReLU → Dropout] × k → Linear (the reference's `MultiLayerBinaryClassifier`)."""

    def __init__(self, in_features: int, hidden_layers, num_labels: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        sizes = [in_features, *hidden_layers]
        for width_in, width_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(width_in, width_out), nn.PReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(sizes[-1], num_labels))
        for layer in layers:
            layer._is_emotion_head = True
        self.layers = nn.Sequential(*layers)

    def forward(self, features):
        return self.layers(features)


class EmotionPreTrainedModel(AdlrPreTrainedModel):
    config_class = EmotionConfig
    config: EmotionConfig
    supports_gradient_checkpointing = True  # the encoders' layers are GradientCheckpointingLayers
    accepts_loss_kwargs = False
    _no_split_modules = ["MegatronGPTBlock", "MLSTMLayer"]

    # -- the encoder (`transformer` or `mlstm`, by `config.encoder_type`) ----------------------------------------
    def _build_encoder(self, config: EmotionConfig) -> None:
        if config.encoder_type == "transformer":
            # The nested encoder config is not one transformers recurses into: it runs the classifier's attention
            # implementation (`set_attn_implementation` later reaches the encoder as a sub-model).
            config.encoder_config._attn_implementation_internal = config._attn_implementation
            self.transformer = MegatronGPTModel(config.encoder_config)
        else:
            self.mlstm = MLSTMModel(config.encoder_config)

    def _encoder(self):
        return self.transformer if self.config.encoder_type == "transformer" else self.mlstm

    def _encode(self, input_ids, attention_mask, position_ids, inputs_embeds, output_attentions,
                output_hidden_states):
        """(encoder output, features [B, H]): the top-layer state at the last real token (transformer), or the final
        cell or hidden state, i.e. the state after the last real byte (mLSTM)."""
        if self.config.encoder_type == "transformer":
            outputs = self.transformer(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                       inputs_embeds=inputs_embeds, use_cache=False,
                                       output_attentions=output_attentions,
                                       output_hidden_states=output_hidden_states, return_dict=True)
            features = pool_last_token(outputs.last_hidden_state, input_ids, attention_mask, self.config.pad_token_id)
            return outputs, features
        outputs = self.mlstm(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                             output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                             return_dict=True)
        return outputs, outputs.final_cell if self.config.mlstm_features == "cell" else outputs.final_hidden

    def get_input_embeddings(self):
        return self._encoder().get_input_embeddings()

    def set_input_embeddings(self, value):
        self._encoder().set_input_embeddings(value)

    def get_output_embeddings(self):
        return getattr(self, "lm_head", None)  # the auxiliary LM loss's output layer (none in EmotionModel)

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    @torch.no_grad()
    def _init_weights(self, module):
        """The encoder's own rules (Megatron-LM's: N(0, σ), σ/√(2L) for the residual projections; or the mLSTM's),
        nn.Linear's for the head."""
        if self._init_head(module):
            return
        if self.config.encoder_type == "mlstm":
            MLSTMModel._init_weights(self.mlstm, module)
            return
        encoder = self.config.encoder_config
        init_megatron_weights(module, encoder.initializer_range, encoder.num_layers)

    # -- pieces the two classifiers share ------------------------------------------------------------------------
    def _build_head(self, config: EmotionConfig) -> None:
        config.check_thresholds()
        self.num_labels = config.num_labels
        self.classifier = EmotionClassifierHead(config.hidden_size, config.classifier_hidden_layers,
                                                config.num_labels, config.classifier_dropout)

    @torch.no_grad()
    def _init_head(self, module) -> bool:
        """nn.Linear's own rule U(-1/√fan_in, 1/√fan_in) for the head (the reference builds it from plain nn.Linear),
        PReLU slope 0.25. Returns whether `module` belonged to the head."""
        if not getattr(module, "_is_emotion_head", False):
            return False
        if isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.in_features)
            init.uniform_(module.weight, -bound, bound)
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.PReLU):
            init.constant_(module.weight, 0.25)
        return True

    def _loss(self, logits, labels, lm_loss):
        classification = F.binary_cross_entropy_with_logits(logits.float(), labels.to(logits.device).float())
        loss = classification
        if lm_loss is not None:
            loss = loss + self.config.aux_lm_loss_weight * lm_loss
        return loss, classification

    def _wants_lm_loss(self, labels) -> bool:
        return labels is not None and self.config.aux_lm_loss_weight > 0

    @torch.no_grad()
    def predict(self, input_ids=None, attention_mask=None, thresholds=None, **kwargs) -> EmotionPrediction:
        """Probabilities and thresholded labels: an emotion is predicted when sigmoid(logit) > its threshold
        (`config.thresholds`, tuned on validation data after training; or `thresholds` given here).

            enc = tokenizer(["so happy for you!"], return_tensors="pt", padding=True)
            model.predict(**enc).labels      # [["joy"]]
        """
        thresholds = self.config.thresholds if thresholds is None else list(thresholds)
        if len(thresholds) != self.num_labels:
            raise ValueError(f"{len(thresholds)} thresholds for {self.num_labels} labels; pass one per label")
        was_training = self.training
        self.eval()
        try:
            logits = self(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs).logits
        finally:
            self.train(was_training)
        probabilities = torch.sigmoid(logits.float())
        limit = torch.tensor(thresholds, dtype=probabilities.dtype, device=probabilities.device)
        predictions = (probabilities > limit).long()
        names = [[self.config.id2label[j] for j in row.nonzero().flatten().tolist()] for row in predictions]
        return EmotionPrediction(probabilities=probabilities, predictions=predictions, labels=names)

    @classmethod
    def from_pretrained_lm(cls, lm_folder, labels, **kwargs):
        """The classifier with its encoder (and the LM head of the auxiliary loss) loaded from a saved language model
        (`MegatronGPTForCausalLM` for `EmotionTransformerForSequenceClassification`, `MLSTMForCausalLM` for
        `MLSTMForSequenceClassification`); the head is initialised fresh.

        `kwargs`: EmotionConfig fields (classifier_hidden_layers, classifier_dropout, aux_lm_loss_weight, ...),
        encoder config overrides as `encoder_overrides={...}` (e.g. dropouts), and from_pretrained options
        (tp_size, dtype, ...).
        """
        import json

        config_file = os.path.join(os.fspath(lm_folder), "config.json")
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"{lm_folder!r} has no config.json; pass a saved language-model folder")
        with open(config_file) as f:
            raw = json.load(f)
        expected = "adlr_megatron_gpt" if cls.encoder_type == "transformer" else "adlr_mlstm"
        if raw.get("model_type") != expected:
            raise ValueError(f"{cls.__name__} needs a {expected} language model; {lm_folder!r} holds a "
                             f"{raw.get('model_type')!r} model")
        for key in ("model_type", "architectures", "auto_map", "transformers_version"):
            raw.pop(key, None)
        raw.update(kwargs.pop("encoder_overrides", None) or {})
        config_fields = {k: kwargs.pop(k) for k in list(kwargs) if k in _CONFIG_FIELDS}
        config = EmotionConfig.from_encoder(ENCODER_CONFIGS[cls.encoder_type](**raw), labels, **config_fields)
        return cls.from_pretrained(lm_folder, config=config, **kwargs)


_CONFIG_FIELDS = {"classifier_hidden_layers", "classifier_dropout", "aux_lm_loss_weight", "thresholds",
                  "mlstm_features", "problem_type"}


class EmotionTransformerForSequenceClassification(EmotionPreTrainedModel):
    """A Megatron-GPT encoder (the paper's transformer LM) with the multi-label head on the top-layer state at the
    last real token (left or right padding)."""

    encoder_type = "transformer"
    base_model_prefix = "transformer"
    _no_split_modules = ["MegatronGPTBlock"]
    _has_attention = True
    _supports_sdpa = True
    _tied_weights_keys = {"lm_head.weight": "transformer.word_embeddings.weight"}
    _tp_plan = {"lm_head": "vocab_lm_head"}

    def __init__(self, config: EmotionConfig):
        super().__init__(config)
        if config.encoder_type != "transformer":
            raise ValueError(f"{type(self).__name__} needs encoder_type='transformer', got {config.encoder_type!r}; "
                             "use MLSTMForSequenceClassification for the mLSTM")
        self._build_encoder(config)
        # The LM's output layer, tied to the embedding: only the auxiliary next-token loss uses it.
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self._build_head(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, labels=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        """`labels`: multi-hot float vectors [B, num_labels]. The auxiliary LM loss needs `input_ids`."""
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        outputs, pooled = self._encode(input_ids, attention_mask, position_ids, inputs_embeds, output_attentions,
                                       output_hidden_states)
        hidden = outputs.last_hidden_state
        logits = self.classifier(pooled)
        loss = classification = lm_loss = None
        if labels is not None:
            if self._wants_lm_loss(labels):
                if input_ids is None:
                    raise ValueError("the auxiliary LM loss needs input_ids; pass them or set aux_lm_loss_weight=0")
                targets = shifted_lm_targets(input_ids, attention_mask)
                lm_loss = lm_cross_entropy(self.lm_head(hidden), targets, head=self.lm_head)
            loss, classification = self._loss(logits, labels, lm_loss)
        out = EmotionClassifierOutput(loss=loss, logits=logits, classification_loss=classification, lm_loss=lm_loss,
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return out if return_dict else out.to_tuple()


class MLSTMForSequenceClassification(EmotionPreTrainedModel):
    """The byte-level mLSTM encoder with the multi-label head on its final cell (or hidden) state, i.e. the state
    after the last real byte."""

    encoder_type = "mlstm"
    base_model_prefix = "mlstm"
    _no_split_modules = ["MLSTMLayer"]

    def __init__(self, config: EmotionConfig):
        super().__init__(config)
        if config.encoder_type != "mlstm":
            raise ValueError(f"{type(self).__name__} needs encoder_type='mlstm', got {config.encoder_type!r}; "
                             "use EmotionTransformerForSequenceClassification for the transformer")
        self._build_encoder(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)  # the LM's decoder, for the auxiliary loss
        self.lm_head._is_lm_decoder = True
        self._build_head(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        outputs, features = self._encode(input_ids, attention_mask, None, inputs_embeds, output_attentions,
                                         output_hidden_states)
        logits = self.classifier(features)
        loss = classification = lm_loss = None
        if labels is not None:
            if self._wants_lm_loss(labels):
                if input_ids is None:
                    raise ValueError("the auxiliary LM loss needs input_ids; pass them or set aux_lm_loss_weight=0")
                lm_logits = self.lm_head(outputs.last_hidden_state)
                targets = shifted_lm_targets(input_ids, attention_mask)
                lm_loss = F.cross_entropy(lm_logits.reshape(-1, lm_logits.shape[-1]).float(), targets.reshape(-1))
            loss, classification = self._loss(logits, labels, lm_loss)
        out = EmotionClassifierOutput(loss=loss, logits=logits, classification_loss=classification, lm_loss=lm_loss,
                                      hidden_states=outputs.hidden_states)
        return out if return_dict else out.to_tuple()


class EmotionModel(EmotionPreTrainedModel):
    """A classifier's pre-trained encoder alone (`AutoModel`): the Megatron-GPT transformer or the mLSTM, by
    `config.encoder_type`, under the classifiers' parameter names (`transformer.*` / `mlstm.*`), so
    `AutoModel.from_pretrained(classifier_folder)` loads the fine-tuned encoder without the heads.

    `last_hidden_state` [B, T, H] is the encoder's top layer at every position; `pooler_output` [B, H] the features
    the classifier's head reads (the state at the last real token; the mLSTM's final cell or hidden state).
    """

    base_model_prefix = "transformer"  # the transformer encoder's TP plan applies under `transformer.`
    _has_attention = True
    _supports_sdpa = True

    def __init__(self, config: EmotionConfig):
        super().__init__(config)
        self._build_encoder(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        outputs, features = self._encode(input_ids, attention_mask, position_ids, inputs_embeds, output_attentions,
                                         output_hidden_states)
        out = BaseModelOutputWithPooling(last_hidden_state=outputs.last_hidden_state, pooler_output=features,
                                         hidden_states=outputs.hidden_states,
                                         attentions=getattr(outputs, "attentions", None))
        return out if return_dict else out.to_tuple()
