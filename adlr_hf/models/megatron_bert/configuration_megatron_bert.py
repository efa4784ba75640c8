"""Configuration of Megatron-BERT (Shoeybi et al., "Megatron-LM", arXiv 1909.08053; reference NVIDIA/Megatron-LM)."""

from transformers import PretrainedConfig


class AdlrMegatronBertConfig(PretrainedConfig):
    """BERT encoder with Megatron's tensor-parallel plan.

    Named with the `Adlr` prefix because transformers' Auto classes look a config up by its class name when they do
    not know the class (a published folder loaded with `trust_remote_code=True`): under transformers' own name
    `AdlrMegatronBertConfig` they would build transformers' Megatron-BERT for it.

    `layernorm_position="pre"` is the paper's reordering (LN at each sublayer's input, a final LN), which lets BERT
    scale past BERT-large; `"post"` is the original BERT residual (LN after each residual add, LN on the
    embeddings), the layout of transformers' `BertModel` checkpoints. `head_hidden_act` is the MLM head's
    activation when it differs from the layers' `hidden_act` (Megatron-LM v2 checkpoints with fused bias-GeLU use
    tanh GeLU in the MLP and erf GeLU in the head); None means the same.
    """

    model_type = "adlr_megatron_bert"
    # Per-batch scalars, not per-example predictions: `Trainer` passes only the logits to `compute_metrics`.
    keys_to_ignore_at_inference = ["mlm_loss", "sop_loss"]
    base_model_tp_plan = {
        "word_embeddings": "embedding_rowwise",
        "layers.*.attention.query_key_value": "qkv_colwise",
        "layers.*.attention.dense": "rowwise",
        "layers.*.mlp.dense_h_to_4h": "colwise",
        "layers.*.mlp.dense_4h_to_h": "rowwise",
    }

    def __init__(
        self,
        vocab_size=30522,
        hidden_size=1024,
        num_layers=24,
        num_attention_heads=16,
        ffn_hidden_size=None,
        max_position_embeddings=512,
        type_vocab_size=2,
        hidden_act="gelu",
        hidden_dropout=0.1,
        attention_dropout=0.1,
        layer_norm_epsilon=1e-12,
        layernorm_position="pre",
        initializer_range=0.02,
        make_vocab_size_divisible_by=128,
        tie_word_embeddings=True,
        pad_token_id=0,
        head_hidden_act=None,
        **kwargs,
    ):
        if layernorm_position not in ("pre", "post"):
            raise ValueError(f"layernorm_position={layernorm_position!r} must be 'pre' (the paper's reordering) "
                             "or 'post' (original BERT)")
        if hidden_size % num_attention_heads != 0:
            raise ValueError(f"hidden_size={hidden_size} is not divisible by num_attention_heads="
                             f"{num_attention_heads}; choose a head count that divides the hidden size.")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_hidden_layers = num_layers
        self.num_attention_heads = num_attention_heads
        self.ffn_hidden_size = ffn_hidden_size if ffn_hidden_size is not None else 4 * hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.hidden_act = hidden_act
        self.head_hidden_act = head_hidden_act
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.layernorm_position = layernorm_position
        self.initializer_range = initializer_range
        self.make_vocab_size_divisible_by = make_vocab_size_divisible_by
        self.tie_word_embeddings = tie_word_embeddings
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def check_tp_size(self, tp_size: int) -> None:
        for name in ("num_attention_heads", "ffn_hidden_size"):
            if getattr(self, name) % tp_size:
                raise ValueError(f"{name}={getattr(self, name)} is not divisible by tp_size={tp_size}; "
                                 "use a tp_size that divides it.")
