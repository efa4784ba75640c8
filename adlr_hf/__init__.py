"""adlr_hf: NVIDIA ADLR's 2018-2019 research models as Hugging Face models with Megatron tensor parallelism.

Importing the package registers every family with transformers' Auto classes.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .models.emotion import (
    EmotionConfig,
    EmotionTransformerForSequenceClassification,
    MLSTMConfig,
    MLSTMForCausalLM,
    MLSTMForSequenceClassification,
    MLSTMModel,
)
from .models.megatron_bert import (
    MegatronBertConfig,
    MegatronBertForMaskedLM,
    MegatronBertForPreTraining,
    MegatronBertForSequenceClassification,
    MegatronBertModel,
)
from .models.megatron_gpt import (
    MegatronGPTConfig,
    MegatronGPTForCausalLM,
    MegatronGPTForSequenceClassification,
    MegatronGPTModel,
)
from .models.pd_resnet import (
    PDResNetConfig,
    PDResNetForImageClassification,
    PDResNetImageProcessor,
    PDResNetModel,
)
from .parallel.hf_native import register_hf_styles
from .registry import get_config, list_models

__version__ = "0.1.0"

# family config -> {Auto class: model class}
_FAMILIES = {
    MegatronGPTConfig: {AutoModel: MegatronGPTModel, AutoModelForCausalLM: MegatronGPTForCausalLM,
                        AutoModelForSequenceClassification: MegatronGPTForSequenceClassification},
    MegatronBertConfig: {AutoModel: MegatronBertModel, AutoModelForMaskedLM: MegatronBertForMaskedLM,
                         AutoModelForPreTraining: MegatronBertForPreTraining,
                         AutoModelForSequenceClassification: MegatronBertForSequenceClassification},
    PDResNetConfig: {AutoModel: PDResNetModel, AutoModelForImageClassification: PDResNetForImageClassification},
    MLSTMConfig: {AutoModel: MLSTMModel, AutoModelForCausalLM: MLSTMForCausalLM},
    # One config, two encoders: a tuple, resolved by the config's `architectures` (set from `encoder_type`).
    EmotionConfig: {AutoModelForSequenceClassification: (EmotionTransformerForSequenceClassification,
                                                         MLSTMForSequenceClassification)},
}


def _register() -> None:
    for config_class, models in _FAMILIES.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        # Saved folders carry the code and an `auto_map`, so they also load with trust_remote_code=True.
        config_class.register_for_auto_class()
        for auto_class, model_classes in models.items():
            auto_class.register(config_class, model_classes, exist_ok=True)
            for model_class in model_classes if isinstance(model_classes, tuple) else (model_classes,):
                model_class.register_for_auto_class(auto_class.__name__)
    # Saved processor configs name transformers' BitImageProcessor (loads without adlr_hf or remote code).
    AutoImageProcessor.register(PDResNetConfig, image_processor_classes={"torchvision": PDResNetImageProcessor},
                                exist_ok=True)
    # Our two TP styles transformers lacks, so `distributed_config=DistributedConfig(tp_plan="auto")` also works.
    register_hf_styles()


_register()

__all__ = [
    "EmotionConfig", "EmotionTransformerForSequenceClassification", "MLSTMConfig", "MLSTMForCausalLM",
    "MLSTMForSequenceClassification", "MLSTMModel",
    "MegatronBertConfig", "MegatronBertForMaskedLM", "MegatronBertForPreTraining",
    "MegatronBertForSequenceClassification", "MegatronBertModel",
    "MegatronGPTConfig", "MegatronGPTForCausalLM", "MegatronGPTForSequenceClassification", "MegatronGPTModel",
    "PDResNetConfig", "PDResNetForImageClassification", "PDResNetImageProcessor", "PDResNetModel",
    "get_config", "list_models",
]
