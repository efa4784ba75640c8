"""Configuration of Megatron-GPT (Shoeybi et al., "Megatron-LM", arXiv 1909.08053; reference NVIDIA/Megatron-LM)."""

from transformers import PretrainedConfig


class MegatronGPTConfig(PretrainedConfig):
    """GPT-2-style decoder with pre-LN blocks, GeLU, learned positions and tied input/output embeddings.

    `base_model_tp_plan` is Megatron's intra-layer split in transformers' plan format: the fused QKV and the
    h→4h projection are column-parallel, the attention output and 4h→h projections row-parallel, the embedding
    (and the tied LM head) vocab-parallel.
    """

    model_type = "adlr_megatron_gpt"
    keys_to_ignore_at_inference = ["cache"]
    base_model_tp_plan = {
        "word_embeddings": "embedding_rowwise",
        "layers.*.self_attention.query_key_value": "qkv_colwise",
        "layers.*.self_attention.dense": "rowwise",
        "layers.*.mlp.dense_h_to_4h": "colwise",
        "layers.*.mlp.dense_4h_to_h": "rowwise",
    }

    def __init__(
        self,
        vocab_size=50257,
        max_position_embeddings=1024,
        hidden_size=1024,
        num_layers=24,
        num_attention_heads=16,
        ffn_hidden_size=None,
        hidden_act="gelu_pytorch_tanh",
        hidden_dropout=0.1,
        attention_dropout=0.1,
        embedding_dropout=0.1,
        layer_norm_epsilon=1e-5,
        initializer_range=0.02,
        make_vocab_size_divisible_by=128,
        tie_word_embeddings=True,
        use_cache=True,
        bos_token_id=50256,
        eos_token_id=50256,
        pad_token_id=None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_hidden_layers = num_layers  # the name transformers' caches read
        self.num_attention_heads = num_attention_heads
        self.ffn_hidden_size = ffn_hidden_size if ffn_hidden_size is not None else 4 * hidden_size
        self.hidden_act = hidden_act
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.embedding_dropout = embedding_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.make_vocab_size_divisible_by = make_vocab_size_divisible_by
        self.tie_word_embeddings = tie_word_embeddings
        self.use_cache = use_cache
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"hidden_size={hidden_size} is not divisible by num_attention_heads={num_attention_heads}; "
                "choose a head count that divides the hidden size."
            )
        super().__init__(bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def check_tp_size(self, tp_size: int) -> None:
        """Each TP rank holds whole attention heads and an equal share of the MLP."""
        if self.num_attention_heads % tp_size != 0:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not divisible by tp_size={tp_size}; "
                "use a tp_size that divides the head count."
            )
        if self.ffn_hidden_size % tp_size != 0:
            raise ValueError(
                f"ffn_hidden_size={self.ffn_hidden_size} is not divisible by tp_size={tp_size}; "
                "use a tp_size that divides it."
            )
