"""What the two Megatron-LM families (GPT and BERT) declare alike: the paper, the shape of a named variant, and the
options of their checkpoint converters (the same flags, added once)."""

from ...family import Option, Paper, Variant

MEGATRON_LM = Paper("Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism",
                    ("1909.08053",), "https://github.com/NVIDIA/Megatron-LM")

MEGATRON_CONVERTER_OPTIONS = (
    Option("--vocab-size", dict(type=int, default=None,
                                help="true vocabulary size (strips Megatron's padding when no tokenizer is beside SRC)")),
    Option("--num-attention-heads", dict(type=int, default=None,
                                         help="attention heads, for Megatron checkpoints that saved no args")),
)


def megatron_variant(name: str, layers: int, hidden: int, heads: int, description: str, **extra) -> Variant:
    return Variant(name, dict(num_layers=layers, hidden_size=hidden, num_attention_heads=heads, **extra), description)
