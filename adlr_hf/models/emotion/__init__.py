"""Multi-label emotion classification on pre-trained LMs (Kant et al., arXiv 1812.01207; reference
NVIDIA/sentiment-discovery): the transformer classifier, the mLSTM baseline (LM, classifier, byte tokenizer), the
config, and threshold tuning.

The model files live in `adlr_hf/models/megatron_gpt/` (configuration_emotion.py, modeling_emotion.py,
configuration_mlstm.py, modeling_mlstm.py, tokenization_mlstm.py): a published folder's remote code must be one flat
folder, and the transformer classifier imports the Megatron-GPT encoder with a single-dot import. This package is the
family's import path.

Getting thresholded emotions:

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model.predict(**tokenizer(texts, return_tensors="pt", padding=True)).labels    # [["joy"], [], ...]

    clf = pipeline("text-classification", model=folder, top_k=None)   # every emotion with its sigmoid score
    select_emotions(clf("so happy for you!")[0], clf.model.config)     # the ones above config.thresholds
"""

from transformers import AutoTokenizer

from ..megatron_gpt.configuration_emotion import EmotionConfig
from ..megatron_gpt.configuration_mlstm import MLSTMConfig
from ..megatron_gpt.modeling_emotion import (
    EmotionClassifierHead,
    EmotionClassifierOutput,
    EmotionPrediction,
    EmotionPreTrainedModel,
    EmotionTransformerForSequenceClassification,
    MLSTMForSequenceClassification,
)
from ..megatron_gpt.modeling_mlstm import MLSTMForCausalLM, MLSTMLayer, MLSTMModel, MLSTMPreTrainedModel
from ..megatron_gpt.tokenization_mlstm import MLSTMByteTokenizer
from .thresholds import apply_thresholds, select_emotions, tune_thresholds

# The byte tokenizer resolves by name from a saved tokenizer_config.json (and carries its code for remote loading).
AutoTokenizer.register(MLSTMConfig, tokenizer_class=MLSTMByteTokenizer, exist_ok=True)
MLSTMByteTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = [
    "EmotionClassifierHead", "EmotionClassifierOutput", "EmotionConfig", "EmotionPreTrainedModel", "EmotionPrediction",
    "EmotionTransformerForSequenceClassification", "MLSTMByteTokenizer", "MLSTMConfig", "MLSTMForCausalLM",
    "MLSTMForSequenceClassification", "MLSTMLayer", "MLSTMModel", "MLSTMPreTrainedModel", "apply_thresholds",
    "select_emotions", "tune_thresholds",
]
