"""The multiplicative LSTM (arXiv 1812.01207's mLSTM encoder; NVIDIA/sentiment-discovery): one cell step against a
hand-written recurrence, and the byte-level language model's shifted loss and padding token. Its use as the emotion
classifier's encoder is tested in tests/models/emotion/."""

import torch
import torch.nn.functional as F

import adlr_hf  # noqa: F401 - registers the Auto classes
from adlr_hf import get_config
from adlr_hf.models.mlstm import MLSTMForCausalLM, MLSTMLayer


def test_mlstm_cell_matches_a_hand_written_step():
    torch.manual_seed(0)
    layer = MLSTMLayer(3, 4)
    x = torch.randn(2, 5, 3)
    hs, cs = layer(x)
    w_ih, b_ih = layer.input_proj.weight, layer.input_proj.bias
    w_hh, b_hh = layer.hidden_proj.weight, layer.hidden_proj.bias
    w_mih, w_mhh = layer.mult_input.weight, layer.mult_hidden.weight
    h = c = torch.zeros(2, 4)
    for t in range(5):
        m = (x[:, t] @ w_mih.T) * (h @ w_mhh.T)
        gates = x[:, t] @ w_ih.T + b_ih + m @ w_hh.T + b_hh
        i, f, g, o = gates[:, :4], gates[:, 4:8], gates[:, 8:12], gates[:, 12:]
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        torch.testing.assert_close(hs[:, t], h)
        torch.testing.assert_close(cs[:, t], c)


def test_mlstm_lm_shifts_labels_and_pads():
    torch.manual_seed(0)
    lm = MLSTMForCausalLM(get_config("mlstm-tiny")).eval()
    ids = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(6))
    out = lm(ids, labels=ids)
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, 257), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, manual)
    assert lm.config.vocab_size == 257 and lm.config.pad_token_id == 256
