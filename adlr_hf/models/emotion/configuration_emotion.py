"""Configuration of the multi-label emotion classifier of Kant et al., "Practical Text Classification With Large
Pre-Trained Language Models", arXiv 1812.01207. Reference: NVIDIA/sentiment-discovery `model/sentiment_classifier.py`
(`SentimentClassifier`, `MultiLayerBinaryClassifier`), `arguments.py`, `experiments/run_clf_multihead.py`.

The encoders' configuration files are symlinked into this folder: a published classifier's remote code must be one
flat folder (transformers copies a model file and the files it imports with a single-dot import).
"""

from __future__ import annotations

from transformers import PretrainedConfig

try:  # the encoder families' own classes with adlr_hf installed; a published folder's copies otherwise
    from adlr_hf.models.megatron_gpt.configuration_megatron_gpt import MegatronGPTConfig
    from adlr_hf.models.mlstm.configuration_mlstm import MLSTMConfig
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries both files
    from .configuration_megatron_gpt import MegatronGPTConfig
    from .configuration_mlstm import MLSTMConfig

ENCODER_CONFIGS = {"transformer": MegatronGPTConfig, "mlstm": MLSTMConfig}
ENCODER_TYPE_OF = {"adlr_megatron_gpt": "transformer", "adlr_mlstm": "mlstm"}
ARCHITECTURES = {"transformer": "EmotionTransformerForSequenceClassification",
                 "mlstm": "MLSTMForSequenceClassification"}
DEFAULT_THRESHOLD = 0.5


class EmotionConfig(PretrainedConfig):
    """A pre-trained LM encoder (nested config) plus the paper's multi-label head.

    Args:
        encoder_type: "transformer" (a Megatron-GPT encoder, pooled at the last real token) or "mlstm" (the byte-level
            multiplicative LSTM, pooled at its final state).
        encoder_config: the encoder's config (a `MegatronGPTConfig` / `MLSTMConfig` or its dict).
        classifier_hidden_layers: widths of the head's hidden layers, e.g. [4096, 2048, 1024] (the paper's SemEval
            multi-head recipe, `--classifier-hidden-layers 4096 2048 1024 8`, whose last number is the label count;
            here the output layer is always added for `num_labels`). [] gives a single linear layer.
        classifier_dropout: the head's dropout (before the first layer and after every PReLU); the recipe uses 0.3.
        aux_lm_loss_weight: weight of the encoder's next-token LM loss added to the BCE loss (the reference's
            `--aux-lm-loss-weight`, 0.02); 0 trains on BCE alone.
        thresholds: per-label decision thresholds on the sigmoid probabilities (a label is predicted when its
            probability is > its threshold, as the reference's `threshold_predictions`); default 0.5 each.
        mlstm_features: "cell" (the reference's default: final cell state) or "hidden" (`--get-hidden`).
        id2label / label2id / num_labels: the labels, as in every transformers classifier.
        problem_type: "multi_label_classification" (independent sigmoids; the text-classification pipeline then
            applies a sigmoid too).
    """

    model_type = "adlr_emotion"
    # Auxiliary per-batch losses, not predictions: `Trainer` passes only the logits to `compute_metrics`.
    keys_to_ignore_at_inference = ["classification_loss", "lm_loss"]

    def __init__(
        self,
        encoder_type="transformer",
        encoder_config=None,
        classifier_hidden_layers=(4096, 2048, 1024),
        classifier_dropout=0.3,
        aux_lm_loss_weight=0.02,
        thresholds=None,
        mlstm_features="cell",
        problem_type="multi_label_classification",
        **kwargs,
    ):
        if encoder_type not in ENCODER_CONFIGS:
            raise ValueError(f"encoder_type={encoder_type!r} is not one of {sorted(ENCODER_CONFIGS)}")
        config_class = ENCODER_CONFIGS[encoder_type]
        if encoder_config is None:
            encoder_config = config_class()
        elif isinstance(encoder_config, dict):
            encoder_config = config_class(**{k: v for k, v in encoder_config.items() if k != "model_type"})
        elif not isinstance(encoder_config, config_class):
            raise ValueError(f"encoder_type={encoder_type!r} needs a {config_class.__name__}, got "
                             f"{type(encoder_config).__name__}; pass the matching encoder_type")
        if mlstm_features not in ("cell", "hidden"):
            raise ValueError(f"mlstm_features={mlstm_features!r} must be 'cell' or 'hidden'")
        if any(int(w) < 1 for w in classifier_hidden_layers):
            raise ValueError(f"classifier_hidden_layers={list(classifier_hidden_layers)} must hold positive widths")
        if not 0.0 <= float(classifier_dropout) < 1.0:
            raise ValueError(f"classifier_dropout={classifier_dropout} must be in [0, 1)")
        if float(aux_lm_loss_weight) < 0:
            raise ValueError(f"aux_lm_loss_weight={aux_lm_loss_weight} must be >= 0")
        self.encoder_type = encoder_type
        self.encoder_config = encoder_config
        self.classifier_hidden_layers = [int(w) for w in classifier_hidden_layers]
        self.classifier_dropout = float(classifier_dropout)
        self.aux_lm_loss_weight = float(aux_lm_loss_weight)
        self.mlstm_features = mlstm_features
        kwargs.setdefault("architectures", [ARCHITECTURES[encoder_type]])
        # The tied LM head of the transformer encoder (for the auxiliary loss); the mLSTM decoder is untied.
        kwargs["tie_word_embeddings"] = bool(getattr(encoder_config, "tie_word_embeddings", False))
        kwargs.setdefault("pad_token_id", encoder_config.pad_token_id)
        super().__init__(problem_type=problem_type, **kwargs)
        self.thresholds = [float(t) for t in thresholds] if thresholds is not None else \
            [DEFAULT_THRESHOLD] * self.num_labels
        self.check_thresholds()

    # -- labels and thresholds ------------------------------------------------------------------------------------
    def set_labels(self, names) -> None:
        """Set id2label / label2id from an ordered list of names and reset the thresholds to 0.5."""
        names = list(names)
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"label names must be a non-empty list without duplicates, got {names}")
        self.id2label = dict(enumerate(names))
        self.label2id = {name: i for i, name in enumerate(names)}
        self.thresholds = [DEFAULT_THRESHOLD] * len(names)

    @property
    def label_names(self) -> list[str]:
        return [self.id2label[i] for i in range(self.num_labels)]

    def check_thresholds(self) -> None:
        if len(self.thresholds) != self.num_labels:
            raise ValueError(f"{len(self.thresholds)} thresholds for {self.num_labels} labels; pass one threshold per "
                             "label (or none for 0.5 each)")
        bad = [t for t in self.thresholds if not 0.0 <= t <= 1.0]
        if bad:
            raise ValueError(f"thresholds must be probabilities in [0, 1]; got {bad}")

    # -- what the encoder decides --------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.encoder_config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.encoder_config.vocab_size

    @vocab_size.setter
    def vocab_size(self, value: int) -> None:
        # `resize_token_embeddings` writes the new size here; it is the encoder's.
        self.encoder_config.vocab_size = value

    @property
    def max_position_embeddings(self):
        return getattr(self.encoder_config, "max_position_embeddings", None)

    @property
    def make_vocab_size_divisible_by(self) -> int:
        return getattr(self.encoder_config, "make_vocab_size_divisible_by", 128)

    @property
    def base_model_tp_plan(self):
        """The encoder's Megatron plan (the head stays replicated); the mLSTM has none."""
        return dict(getattr(self.encoder_config, "base_model_tp_plan", None) or {}) or None

    def check_tp_size(self, tp_size: int) -> None:
        self.encoder_config.check_tp_size(tp_size)

    @classmethod
    def from_encoder(cls, encoder_config, labels, **kwargs) -> "EmotionConfig":
        """An emotion config around a pre-trained LM's config (MegatronGPTConfig or MLSTMConfig)."""
        encoder_type = ENCODER_TYPE_OF.get(getattr(encoder_config, "model_type", None))
        if encoder_type is None:
            raise ValueError(f"cannot build an emotion classifier on a {type(encoder_config).__name__} "
                             f"(model_type {getattr(encoder_config, 'model_type', None)!r}); use a Megatron-GPT or "
                             "mLSTM language model")
        labels = list(labels)
        return cls(encoder_type=encoder_type, encoder_config=encoder_config, id2label=dict(enumerate(labels)),
                   label2id={name: i for i, name in enumerate(labels)}, **kwargs)
