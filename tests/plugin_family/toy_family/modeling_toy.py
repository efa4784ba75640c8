"""A two-layer MLP regressor whose forward returns the loss, as every adlr_hf model does."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_toy import ToyConfig


@dataclass
class ToyOutput(ModelOutput):
    loss: torch.Tensor | None = None
    predictions: torch.Tensor | None = None


class ToyRegressor(PreTrainedModel):
    config_class = ToyConfig
    base_model_prefix = "toy"
    main_input_name = "features"

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.hidden = nn.Linear(config.num_features, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, features, labels=None, return_dict=None):
        predictions = self.out(self.dropout(torch.tanh(self.hidden(features)))).squeeze(-1)
        loss = F.mse_loss(predictions, labels.to(predictions.dtype)) if labels is not None else None
        return ToyOutput(loss=loss, predictions=predictions)
