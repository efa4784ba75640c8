"""Multi-label emotion classification on pre-trained LMs (Kant et al., arXiv 1812.01207; reference
NVIDIA/sentiment-discovery): the transformer classifier (a Megatron-GPT encoder), the mLSTM baseline's classifier, the
config and threshold tuning.

The encoders' files are symlinked into this folder (`modeling_megatron_gpt.py`, `modeling_mlstm.py`, ...): a published
classifier's remote code must be one flat folder. With adlr_hf installed the classes are the encoder families' own.

Getting thresholded emotions:

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model.predict(**tokenizer(texts, return_tensors="pt", padding=True)).labels    # [["joy"], [], ...]

    clf = pipeline("text-classification", model=folder, top_k=None)   # every emotion with its sigmoid score
    select_emotions(clf("so happy for you!")[0], clf.model.config)     # the ones above config.thresholds
"""

from ...family import CardFacts, FamilySpec
from ..mlstm import PRACTICAL_TEXT_CLASSIFICATION
from .configuration_emotion import EmotionConfig
from .modeling_emotion import (
    EmotionClassifierHead,
    EmotionClassifierOutput,
    EmotionModel,
    EmotionPrediction,
    EmotionPreTrainedModel,
    EmotionTransformerForSequenceClassification,
    MLSTMForSequenceClassification,
)
from .task_emotion_classification import EmotionClassificationTask
from .thresholds import apply_thresholds, select_emotions, tune_thresholds

SPEC = FamilySpec(
    name="emotion",
    config_class=EmotionConfig,
    # AutoModel: the classifier's encoder alone (either encoder, by `encoder_type`), under the classifiers' names.
    # One config, two classifiers: a tuple, resolved by the config's `architectures` (set from `encoder_type`).
    models={"AutoModel": EmotionModel,
            "AutoModelForSequenceClassification": (EmotionTransformerForSequenceClassification,
                                                   MLSTMForSequenceClassification)},
    default_task="emotion-classification",
    tasks=(EmotionClassificationTask(),),
    card=CardFacts(
        title="Emotion classifier (transformer / mLSTM)",
        paper=PRACTICAL_TEXT_CLASSIFICATION,
        description="a multi-label emotion classifier fine-tuned from a pre-trained language model (a Megatron-GPT "
                    "transformer pooled at the last real token, or the byte-level mLSTM baseline): a "
                    "Dropout-[Linear-PReLU-Dropout]xk-Linear head with one sigmoid per emotion, trained with BCE plus "
                    "0.02 x the LM loss, and per-emotion decision thresholds tuned on validation data "
                    "(`config.thresholds`, applied by `model.predict`)",
        intended_use="Detecting the emotions expressed in short English texts (tweets, comments), for research.",
        license_notes="GoEmotions is CC BY 4.0; SemEval-2018 Task 1 data is for research use under its terms.",
        tags=("emotion", "multi-label-classification", "sentiment"),
        limitations=("Emotion labels are subjective and the training data (tweets, Reddit comments) carries its "
                     "annotators' and authors' biases; scores on other domains are lower and uncalibrated.",)),
)

__all__ = [
    "SPEC", "EmotionClassificationTask", "EmotionClassifierHead", "EmotionClassifierOutput", "EmotionConfig",
    "EmotionModel", "EmotionPreTrainedModel", "EmotionPrediction", "EmotionTransformerForSequenceClassification",
    "MLSTMForSequenceClassification",
    "apply_thresholds", "select_emotions", "tune_thresholds",
]
