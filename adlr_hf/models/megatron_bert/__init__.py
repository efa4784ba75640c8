"""Megatron-BERT (Shoeybi et al., arXiv 1909.08053; reference NVIDIA/Megatron-LM): a BERT encoder with Megatron's
tensor parallelism and the paper's pre-LN block ordering (post-LN as an option)."""

from ...family import CardFacts, Converter, FamilySpec
from ..megatron_common.family_facts import MEGATRON_CONVERTER_OPTIONS, MEGATRON_LM
from ..megatron_common.family_facts import megatron_variant as _bert
from .configuration_megatron_bert import AdlrMegatronBertConfig
from .modeling_megatron_bert import (
    MegatronBertForMaskedLM,
    MegatronBertForPreTraining,
    MegatronBertForSequenceClassification,
    MegatronBertModel,
    MegatronBertPreTrainedModel,
)



SPEC = FamilySpec(
    name="megatron_bert",
    config_class=AdlrMegatronBertConfig,
    models={"AutoModel": MegatronBertModel, "AutoModelForMaskedLM": MegatronBertForMaskedLM,
            "AutoModelForPreTraining": MegatronBertForPreTraining,
            "AutoModelForSequenceClassification": MegatronBertForSequenceClassification},
    default_task="bert-pretraining",
    # Megatron-BERT (arXiv 1909.08053, Table 4): pre-LN by default (the paper's reordering).
    variants=(
        _bert("megatron-bert-tiny", 2, 64, 4, "for tests and demos", vocab_size=1024, max_position_embeddings=128),
        _bert("megatron-bert-336m", 24, 1024, 16, "paper Table 4"),
        _bert("megatron-bert-1.3b", 24, 2048, 32, "paper Table 4"),
        _bert("megatron-bert-3.9b", 48, 2560, 40, "paper Table 4"),
    ),
    converters=(
        Converter("bert-hf", "adlr_hf.models.megatron_bert.convert_megatron_bert:convert_bert_hf",
                  "a transformers BERT folder"),
        Converter("megatron-bert", "adlr_hf.models.megatron_bert.convert_megatron_bert:convert_megatron_bert",
                  "a Megatron-LM BERT checkpoint (any TP degree)", MEGATRON_CONVERTER_OPTIONS),
    ),
    card=CardFacts(
        title="Megatron-BERT",
        paper=MEGATRON_LM,
        description="a BERT encoder with Megatron's tensor parallelism and the paper's pre-LN block ordering",
        intended_use="Research on masked-language-model pretraining at scale; a starting point for fine-tuning "
                     "on classification.",
        tags=("bert", "fill-mask", "tensor-parallelism"),
        limitations=("A masked language model fills in tokens from its training distribution and reproduces its "
                     "biases; fine-tune it before using it for a downstream task.",)),
)

__all__ = [
    "SPEC", "AdlrMegatronBertConfig", "MegatronBertForMaskedLM", "MegatronBertForPreTraining",
    "MegatronBertForSequenceClassification", "MegatronBertModel", "MegatronBertPreTrainedModel",
]
