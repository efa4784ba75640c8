"""Command-line options of the Megatron-LM checkpoint converters (GPT and BERT take the same ones)."""

from ...family import Option

MEGATRON_CONVERTER_OPTIONS = (
    Option("--vocab-size", dict(type=int, default=None,
                                help="true vocabulary size (strips Megatron's padding when no tokenizer is beside SRC)")),
    Option("--num-attention-heads", dict(type=int, default=None,
                                         help="attention heads, for Megatron checkpoints that saved no args")),
)
