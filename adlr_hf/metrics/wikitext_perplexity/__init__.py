"""Megatron-LM WikiText perplexity (token-level and word-level adjusted)."""

from .wikitext_perplexity import WikitextPerplexity

__all__ = ["WikitextPerplexity"]
