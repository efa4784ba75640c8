"""The byte-level multiplicative-LSTM language model (Krause et al., arXiv 1609.07959), the recurrent baseline of
Kant et al., arXiv 1812.01207 (reference NVIDIA/sentiment-discovery). Pre-train it with `--task char-lm`; fine-tune it
for emotions with `--task emotion-classification` (the `emotion` family)."""

from ...family import CardFacts, FamilySpec, Paper, Variant

# The emotion paper, whose baseline this model is (the emotion family cites it alone).
PRACTICAL_TEXT_CLASSIFICATION = Paper("Practical Text Classification With Large Pre-Trained Language Models",
                                      ("1812.01207",), "https://github.com/NVIDIA/sentiment-discovery")
from .configuration_mlstm import MLSTMConfig
from .modeling_mlstm import MLSTMForCausalLM, MLSTMLayer, MLSTMModel, MLSTMPreTrainedModel
from .tokenization_mlstm import MLSTMByteTokenizer


def _register_tokenizer() -> None:
    from transformers import AutoTokenizer

    # The byte tokenizer resolves by name from a saved tokenizer_config.json (and carries its code for remote loading).
    AutoTokenizer.register(MLSTMConfig, tokenizer_class=MLSTMByteTokenizer, exist_ok=True)
    MLSTMByteTokenizer.register_for_auto_class("AutoTokenizer")


SPEC = FamilySpec(
    name="mlstm",
    config_class=MLSTMConfig,
    models={"AutoModel": MLSTMModel, "AutoModelForCausalLM": MLSTMForCausalLM},
    default_task="char-lm",
    variants=(
        Variant("mlstm-tiny", dict(hidden_size=64, embedding_size=16), "for tests and demos"),
        Variant("mlstm-4096", dict(hidden_size=4096, embedding_size=64), "arXiv 1812.01207 mLSTM baseline"),
    ),
    register=_register_tokenizer,
    processor=lambda config: MLSTMByteTokenizer(),
    card=CardFacts(
        title="mLSTM byte-level LM",
        paper=Paper(PRACTICAL_TEXT_CLASSIFICATION.title, ("1812.01207", "1609.07959"),
                    PRACTICAL_TEXT_CLASSIFICATION.reference_repo),
        description="a multiplicative-LSTM language model over UTF-8 bytes (vocabulary 257 with padding), the "
                    "recurrent baseline the paper fine-tunes for emotion classification",
        intended_use="Pre-training a byte-level encoder for text classification; research on recurrent LMs.",
        tags=("mlstm", "character-level", "causal-lm"),
        limitations=("A small byte-level language model; its samples are not useful text.",)),
    unsupported={"tensor_parallel": "the recurrence runs on one process (no TP plan)",
                 "output_attentions": "a recurrent model has no attention",
                 "pipeline": "no text-generation: generate() needs a recurrent-state cache the mLSTM does not keep"},
)

__all__ = ["SPEC", "MLSTMByteTokenizer", "MLSTMConfig", "MLSTMForCausalLM", "MLSTMLayer", "MLSTMModel",
           "MLSTMPreTrainedModel"]
