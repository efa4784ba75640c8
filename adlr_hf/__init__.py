"""adlr_hf: NVIDIA ADLR's 2018-2019 research models as Hugging Face models with Megatron tensor parallelism.

Importing the package registers every family with transformers' Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from .models.megatron_gpt import (
    MegatronGPTConfig,
    MegatronGPTForCausalLM,
    MegatronGPTForSequenceClassification,
    MegatronGPTModel,
)
from .parallel.hf_native import register_hf_styles
from .registry import get_config, list_models

__version__ = "0.1.0"


def _register() -> None:
    AutoConfig.register(MegatronGPTConfig.model_type, MegatronGPTConfig, exist_ok=True)
    AutoModel.register(MegatronGPTConfig, MegatronGPTModel, exist_ok=True)
    AutoModelForCausalLM.register(MegatronGPTConfig, MegatronGPTForCausalLM, exist_ok=True)
    AutoModelForSequenceClassification.register(MegatronGPTConfig, MegatronGPTForSequenceClassification,
                                                exist_ok=True)
    # Saved folders carry the code and an `auto_map`, so they also load with trust_remote_code=True.
    MegatronGPTConfig.register_for_auto_class()
    MegatronGPTModel.register_for_auto_class("AutoModel")
    MegatronGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    MegatronGPTForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
    # Our two TP styles transformers lacks, so `distributed_config=DistributedConfig(tp_plan="auto")` also works.
    register_hf_styles()


_register()

__all__ = [
    "MegatronGPTConfig", "MegatronGPTForCausalLM", "MegatronGPTForSequenceClassification", "MegatronGPTModel",
    "get_config", "list_models",
]
