"""Activation memory of one micro-batch on one rank, after Korthikanti et al., "Reducing Activation Recomputation in
Large Transformer Models", arXiv 2205.05198, §4.

Per transformer layer, with s sequence length, b micro-batch, h hidden size, a heads, t the TP degree and 16-bit
activations (1-byte dropout masks), the paper's §4.1-4.2 count is

    sbh·(34 + 5as/h)                    without tensor parallelism
    sbh·(10 + 24/t + 5as/(ht))          with tensor parallelism (no sequence parallelism)

from: attention 11sbh + 5as²b (QKV input 2, Q and K 4, V 2, softmax output 2as²b, its dropout mask as²b and output
2as²b, output-projection input 2, dropout mask 1), MLP 19sbh (input 2, GeLU input 8 and output 8, dropout mask 1),
two layer norms 4sbh; the layer-norm inputs, the QKV and MLP inputs and the two dropout masks (10sbh) are
replicated on every TP rank, the rest is split. `layer_bytes` writes the same count for any activation width w
(w = 2 gives the paper's numbers): (4w + 2)·sbh + 12w·sbh/t + (2w + 1)·as²b/t.

With full activation recomputation (§4.3; Megatron's `--checkpoint-activations`) each layer keeps only its input,
w·sbh (2sbh in the paper), and its own activations exist again only while that layer is recomputed in the backward
pass: the peak adds one layer's count.

Outside the layers (§4.3, "input/output"): the embedding dropout mask sbh, the final layer norm's and the output
projection's inputs (w·sbh each) and the fp32 logits of the vocab-parallel cross entropy, 4·s·b·V/t. These are
Megatron-GPT's; a BERT head adds a few sbh, which this count leaves out. With a fused (flash) attention kernel the
5as/h term is not stored; the count keeps it, as the paper does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


def layer_bytes(s: int, b: int, h: int, a: int, t: int, w: int = 2) -> float:
    """One transformer layer's stored activations on one TP rank (Korthikanti et al. §4.2, any width w)."""
    sbh = s * b * h
    return (4 * w + 2) * sbh + 12 * w * sbh / t + (2 * w + 1) * a * s * s * b / t


def outside_layers_bytes(s: int, b: int, h: int, vocab: int, t: int, w: int = 2) -> float:
    """Embedding dropout mask, final layer-norm and output-projection inputs, fp32 logits of the loss."""
    sbh = s * b * h
    return sbh + 2 * w * sbh + 4 * s * b * vocab / t


@dataclass(frozen=True)
class ActivationMemory:
    per_layer: float
    outside_layers: float
    full: float           # every layer's activations stored
    checkpointed: float   # layer inputs only, plus one layer while it is recomputed

    def as_dict(self) -> dict:
        return asdict(self)


def activation_memory(layers: int, s: int, b: int, h: int, a: int, vocab: int, t: int, w: int = 2) -> ActivationMemory:
    per_layer = layer_bytes(s, b, h, a, t, w)
    outside = outside_layers_bytes(s, b, h, vocab, t, w)
    return ActivationMemory(per_layer=per_layer, outside_layers=outside, full=layers * per_layer + outside,
                            checkpointed=layers * w * s * b * h + per_layer + outside)
