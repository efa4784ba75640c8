"""Byte-level "tokenizer" of the mLSTM baseline (arXiv 1812.01207; reference NVIDIA/sentiment-discovery
`data_utils/preprocess.py` `tokenize_str_batch`, which feeds the UTF-8 bytes of a string as ids).

Ids 0-255 are the UTF-8 bytes; id 256 is `<pad>` (the vocabulary of 257). No bos/eos are added.
Deviation: the reference pads with byte 0; a separate pad id keeps a real NUL byte distinct from padding.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizer

NUM_BYTES = 256


class MLSTMByteTokenizer(PreTrainedTokenizer):
    """`tokenizer("héllo")` -> the UTF-8 bytes as ids; `decode` turns them back into text (invalid UTF-8 is
    replaced). Saved with `save_pretrained` (there is no vocabulary file: the vocabulary is the bytes)."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, pad_token="<pad>", padding_side="right", **kwargs):
        super().__init__(pad_token=pad_token, padding_side=padding_side, **kwargs)

    @property
    def vocab_size(self) -> int:
        return NUM_BYTES

    def get_vocab(self) -> dict[str, int]:
        vocab = {chr(i): i for i in range(NUM_BYTES)}
        vocab.update(self.added_tokens_encoder)
        return vocab

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        # One "token" per byte, spelled as the code point of the same number (as ByT5 does).
        return [chr(b) for b in text.encode("utf-8")]

    def _convert_token_to_id(self, token: str) -> int:
        if len(token) == 1 and ord(token) < NUM_BYTES:
            return ord(token)
        return self.added_tokens_encoder.get(token, self.pad_token_id)

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < NUM_BYTES:
            return chr(index)
        return self.added_tokens_decoder[index].content

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        data = bytearray()
        for token in tokens:
            if len(token) == 1 and ord(token) < NUM_BYTES:
                data.append(ord(token))
            else:
                data.extend(token.encode("utf-8"))
        return data.decode("utf-8", errors="replace")

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        return ()
