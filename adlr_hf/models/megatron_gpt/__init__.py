from .configuration_megatron_gpt import MegatronGPTConfig
from .modeling_megatron_gpt import (
    MegatronGPTForCausalLM,
    MegatronGPTForSequenceClassification,
    MegatronGPTModel,
    MegatronGPTPreTrainedModel,
)

__all__ = [
    "MegatronGPTConfig", "MegatronGPTForCausalLM", "MegatronGPTForSequenceClassification", "MegatronGPTModel",
    "MegatronGPTPreTrainedModel",
]
