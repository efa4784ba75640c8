"""Megatron-GPT (Shoeybi et al., arXiv 1909.08053; reference NVIDIA/Megatron-LM): a GPT-2-style causal LM whose
attention, MLP and vocabulary layers split across ranks with Megatron's tensor parallelism."""

from ...family import CardFacts, Converter, FamilySpec, PaperScale
from ..megatron_common.family_facts import MEGATRON_CONVERTER_OPTIONS, MEGATRON_LM
from ..megatron_common.family_facts import megatron_variant as _gpt
from .configuration_megatron_gpt import MegatronGPTConfig
from .modeling_megatron_gpt import (
    MegatronGPTForCausalLM,
    MegatronGPTForSequenceClassification,
    MegatronGPTModel,
    MegatronGPTPreTrainedModel,
)



SPEC = FamilySpec(
    name="megatron_gpt",
    config_class=MegatronGPTConfig,
    models={"AutoModel": MegatronGPTModel, "AutoModelForCausalLM": MegatronGPTForCausalLM,
            "AutoModelForSequenceClassification": MegatronGPTForSequenceClassification},
    default_task="causal-lm",
    # Megatron-LM (arXiv 1909.08053): Table 2 (355M, 2.5B, 8.3B) and the weak-scaling Table 1 sizes (1.2B ... 8.3B).
    variants=(
        _gpt("megatron-gpt-tiny", 2, 64, 4, "for tests and demos", vocab_size=1024, max_position_embeddings=128,
             bos_token_id=0, eos_token_id=0),
        _gpt("megatron-gpt-mini", 4, 256, 8, "demo size: trains in minutes on a laptop CPU", vocab_size=4096,
             max_position_embeddings=256, bos_token_id=0, eos_token_id=0),
        _gpt("megatron-gpt-355m", 24, 1024, 16, "paper Table 2"),
        _gpt("megatron-gpt-1.2b", 40, 1536, 16, "paper Table 1, TP=1"),
        _gpt("megatron-gpt-2.5b", 54, 1920, 20, "paper Tables 1-2, TP=2"),
        _gpt("megatron-gpt-4.2b", 64, 2304, 24, "paper Table 1, TP=4"),
        _gpt("megatron-gpt-8.3b", 72, 3072, 32, "paper Tables 1-2, TP=8"),
        # The transformer LM of arXiv 1812.01207 (SentencePiece 32k + pad; positions 256); fine-tune it with
        # `--task emotion-classification`.
        _gpt("megatron-gpt-sentiment", 12, 768, 8, "arXiv 1812.01207 transformer LM (emotion fine-tuning)",
             vocab_size=32001, max_position_embeddings=256, bos_token_id=None, eos_token_id=None),
    ),
    converters=(
        Converter("gpt2-hf", "adlr_hf.models.megatron_gpt.convert_megatron_gpt:convert_gpt2_hf",
                  "a transformers GPT-2 folder"),
        Converter("megatron-gpt", "adlr_hf.models.megatron_gpt.convert_megatron_gpt:convert_megatron_gpt",
                  "a Megatron-LM GPT checkpoint (any TP degree)", MEGATRON_CONVERTER_OPTIONS),
    ),
    card=CardFacts(
        title="Megatron-GPT",
        paper=MEGATRON_LM,
        description="a GPT-2-style decoder-only language model (pre-LN blocks, GeLU MLP, learned positions, tied "
                    "input/output embeddings) whose attention, MLP and vocabulary layers split across GPUs with "
                    "Megatron's intra-layer tensor parallelism",
        intended_use="Research on language modelling and on tensor-parallel training; text continuation.",
        tags=("gpt2", "causal-lm", "tensor-parallelism"),
        limitations=("A language model continues text; it states falsehoods fluently and reproduces biases of its "
                     "training data. It was not tuned to follow instructions or for safety.",)),
    # Megatron-LM §5: the 8.3B model on 512 V100 32 GB (32 DGX-2H nodes × 16), 8-way model × 64-way data parallel,
    # batch 512 of 1024 tokens, mixed precision (fp16 there; bf16 here, the same bytes), per-layer activation
    # checkpointing (Megatron-LM's --checkpoint-activations), no optimizer sharding (ZeRO-0).
    paper_scale=PaperScale(tp=8, dp=64, micro_batch_size=8, seq_len=1024, zero_stage=0, precision="bf16",
                           activation_checkpointing=True, gpus_per_node=16, gpu_memory_gib=32,
                           source="The paper's layout (Megatron-LM, arXiv 1909.08053, §5): 8-way tensor × 64-way "
                                  "data parallelism on 512 V100 32 GB GPUs (32 DGX-2H nodes of 16), 512 sequences "
                                  "of 1,024 tokens per step, 16-bit weights with fp32 master weights, activation "
                                  "checkpointing per layer."),
)

__all__ = [
    "SPEC", "MegatronGPTConfig", "MegatronGPTForCausalLM",
    "MegatronGPTForSequenceClassification", "MegatronGPTModel", "MegatronGPTPreTrainedModel",
]
