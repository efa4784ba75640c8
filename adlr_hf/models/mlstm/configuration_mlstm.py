"""Configuration of the multiplicative-LSTM character language model.

Papers: Krause et al., "Multiplicative LSTM for sequence modelling", arXiv 1609.07959 (the cell); Kant et al.,
"Practical Text Classification With Large Pre-Trained Language Models", arXiv 1812.01207 (the 4096-d byte-level
baseline). Reference: NVIDIA/sentiment-discovery `model/RNN_utils/RNN/cells.py` (mLSTMCell), `model/model.py`
(RNNModel / RNNFeaturizer), `analysis/reproduction.md` (sizes).
"""

from transformers import PretrainedConfig


class MLSTMConfig(PretrainedConfig):
    """Byte-level mLSTM LM: 256 byte ids plus one padding id (vocabulary 257), a small character embedding and one
    (or more, stacked) multiplicative LSTM layers. The paper's model: embedding 64, hidden 4096, one layer.

    There is no tensor-parallel plan: the recurrence is run on one process (`check_tp_size` rejects TP > 1).
    """

    model_type = "adlr_mlstm"

    def __init__(
        self,
        vocab_size=257,
        embedding_size=64,
        hidden_size=4096,
        num_layers=1,
        dropout=0.0,
        initializer_range=None,
        pad_token_id=256,
        tie_word_embeddings=False,
        **kwargs,
    ):
        if vocab_size < 1 or embedding_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(f"vocab_size={vocab_size}, embedding_size={embedding_size}, hidden_size={hidden_size} and "
                             f"num_layers={num_layers} must all be >= 1")
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_hidden_layers = num_layers
        self.dropout = dropout
        # None: PyTorch's LSTM rule, U(-1/sqrt(hidden), 1/sqrt(hidden)), as the reference's RNNCell.reset_parameters.
        self.initializer_range = initializer_range
        self.tie_word_embeddings = tie_word_embeddings
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    def check_tp_size(self, tp_size: int) -> None:
        if tp_size != 1:
            raise ValueError(f"the mLSTM has no tensor-parallel plan (got tp_size={tp_size}); train it with --tp 1 "
                             "and scale with data parallelism.")
