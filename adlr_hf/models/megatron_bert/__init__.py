from .configuration_megatron_bert import MegatronBertConfig
from .modeling_megatron_bert import (
    MegatronBertForMaskedLM,
    MegatronBertForPreTraining,
    MegatronBertForSequenceClassification,
    MegatronBertModel,
    MegatronBertPreTrainedModel,
)

__all__ = [
    "MegatronBertConfig", "MegatronBertForMaskedLM", "MegatronBertForPreTraining",
    "MegatronBertForSequenceClassification", "MegatronBertModel", "MegatronBertPreTrainedModel",
]
