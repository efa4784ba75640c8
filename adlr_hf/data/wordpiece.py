"""A BERT-style WordPiece tokenizer trained with the `tokenizers` library (for masked-LM pretraining from scratch)."""

from __future__ import annotations

import os

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0-4


def train_wordpiece_tokenizer(documents, vocab_size: int, out_dir: str | os.PathLike | None = None, *,
                              text_column: str = "text", lowercase: bool = True) -> PreTrainedTokenizerFast:
    """Train an uncased (by default) WordPiece vocabulary on `documents` (a `datasets.Dataset` with `text_column`
    or an iterable of strings) and return it as a fast tokenizer with BERT's special tokens and post-processor.

    Two trainings on the same text in different processes can give slightly different vocabularies: `tokenizers`
    numbers the "##" continuation pieces in hash-map order and breaks merge ties by those ids (upstream issue
    huggingface/tokenizers#1794). Save the result and reuse it (a resumed run reuses its checkpoint's tokenizer).
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 100:
        raise ValueError(f"vocab_size={vocab_size!r} is too small for a WordPiece vocabulary; pass at least 100")
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    steps = [normalizers.NFD(), normalizers.StripAccents()]
    wordpiece.normalizer = normalizers.Sequence(([normalizers.Lowercase()] if lowercase else []) + steps)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                        show_progress=False)
    texts = (row[text_column] for row in documents) if hasattr(documents, "column_names") else iter(documents)
    wordpiece.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id),
                                                                                    ("[SEP]", sep_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=wordpiece, pad_token="[PAD]", unk_token="[UNK]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    if out_dir is not None:
        tokenizer.save_pretrained(os.fspath(out_dir))
    return tokenizer
