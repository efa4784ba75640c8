"""A plain model folder (no run) for the hub tests: a tiny Megatron-GPT with a byte-level BPE tokenizer."""

from pathlib import Path

import torch

from adlr_hf.data.text import train_tokenizer
from adlr_hf.models.megatron_gpt import MegatronGPTConfig, MegatronGPTForCausalLM


def write_tiny_gpt_folder(folder: Path) -> Path:
    tokenizer = train_tokenizer([f"the {w} sat on the mat {i}" for i, w in enumerate(["cat", "dog", "cow"] * 20)],
                                vocab_size=280)
    torch.manual_seed(0)
    config = MegatronGPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_attention_heads=4,
                               max_position_embeddings=64, bos_token_id=0, eos_token_id=0, pad_token_id=1)
    MegatronGPTForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
