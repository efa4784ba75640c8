"""Pieces shared by the Megatron-LM families (GPT, BERT): checkpoint reading, TP-shard merging, atomic output."""
