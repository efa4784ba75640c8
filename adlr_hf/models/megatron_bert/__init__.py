"""Megatron-BERT (Shoeybi et al., arXiv 1909.08053; reference NVIDIA/Megatron-LM): a BERT encoder with Megatron's
tensor parallelism and the paper's pre-LN block ordering (post-LN as an option)."""

from ...family import CardFacts, Converter, FamilySpec, PaperScale
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
    # Megatron-LM Table 4: the 3.9B BERT on 512 GPUs (V100 32 GB, DGX-2H nodes of 16), batch 1024 of 512 tokens.
    # The 4-way tensor-parallel split is an assumption (not verified against the paper); the card says so.
    paper_scale=PaperScale(tp=4, dp=128, micro_batch_size=8, seq_len=512, zero_stage=0, precision="bf16",
                           activation_checkpointing=True, gpus_per_node=16, gpu_memory_gib=32,
                           source="The paper's layout for its largest BERT (Megatron-LM, arXiv 1909.08053, Table 4): "
                                  "512 V100 32 GB GPUs (DGX-2H nodes of 16), 1,024 sequences of 512 tokens per step, "
                                  "16-bit weights with fp32 master weights, activation checkpointing per layer; "
                                  "4-way tensor parallelism assumed (the paper's split is not verified here)."),
)

__all__ = [
    "SPEC", "AdlrMegatronBertConfig", "MegatronBertForMaskedLM", "MegatronBertForPreTraining",
    "MegatronBertForSequenceClassification", "MegatronBertModel", "MegatronBertPreTrainedModel",
]
