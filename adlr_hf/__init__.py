"""adlr_hf: NVIDIA ADLR's 2018-2019 research models as Hugging Face models with Megatron tensor parallelism.

Importing the package registers every family of `adlr_hf.models.FAMILIES` (and the plug-ins named by
`ADLR_HF_PLUGINS` or the `adlr_hf.plugins` entry points) with transformers' Auto classes.
"""

from .family import CardFacts, Converter, FamilySpec, Option, Variant
from .models import FAMILIES
from .models.emotion import EmotionConfig, EmotionTransformerForSequenceClassification, MLSTMForSequenceClassification
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
from .models.mlstm import MLSTMByteTokenizer, MLSTMConfig, MLSTMForCausalLM, MLSTMModel
from .models.pd_resnet import PDResNetConfig, PDResNetForImageClassification, PDResNetImageProcessor, PDResNetModel
from .parallel.hf_native import register_hf_styles
from .registry import families, get_config, list_models, load_plugins, register_family
from .tasks import register_task

__version__ = "0.1.0"

for _spec in FAMILIES:
    register_family(_spec)
# Our two TP styles transformers lacks, so `distributed_config=DistributedConfig(tp_plan="auto")` also works.
register_hf_styles()
load_plugins()

__all__ = [
    "FAMILIES", "CardFacts", "Converter", "FamilySpec", "Option", "Variant",
    "EmotionConfig", "EmotionTransformerForSequenceClassification", "MLSTMByteTokenizer", "MLSTMConfig",
    "MLSTMForCausalLM", "MLSTMForSequenceClassification", "MLSTMModel",
    "MegatronBertConfig", "MegatronBertForMaskedLM", "MegatronBertForPreTraining",
    "MegatronBertForSequenceClassification", "MegatronBertModel",
    "MegatronGPTConfig", "MegatronGPTForCausalLM", "MegatronGPTForSequenceClassification", "MegatronGPTModel",
    "PDResNetConfig", "PDResNetForImageClassification", "PDResNetImageProcessor", "PDResNetModel",
    "families", "get_config", "list_models", "load_plugins", "register_family", "register_task",
]
