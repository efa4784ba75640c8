"""Configuration of the toy regressor: a family defined outside adlr_hf, to show that one plugs in."""

from transformers import PretrainedConfig


class ToyConfig(PretrainedConfig):
    model_type = "toy_regressor"

    def __init__(self, num_features=4, hidden_size=16, dropout=0.1, **kwargs):
        self.num_features = num_features
        self.hidden_size = hidden_size
        self.dropout = dropout
        super().__init__(**kwargs)
