"""The landmark dynamics LSTM: roll-out shapes (with and without covariances), teacher forcing against manual LSTM
steps, the L2 loss, free roll-out in evaluation, save/load by AutoModel, decoding a roll-out through a landmark
model, and the clear errors for a K mismatch and bad shapes."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

import adlr_hf  # noqa: F401 - registers the families
from adlr_hf.models.landmark_video.configuration_landmark_dynamics import LandmarkDynamicsConfig
from adlr_hf.models.landmark_video.modeling_landmark_dynamics import LandmarkDynamicsModel
from models.landmark_video.landmark_stand_in import StandInLandmarks

K = 3


def make(seed=0, **overrides):
    torch.manual_seed(seed)
    config = LandmarkDynamicsConfig(num_landmarks=K, hidden_size=16, num_layers=2, past_frames=3, future_frames=2,
                                    **overrides)
    return LandmarkDynamicsModel(config)


def sequence(batch=2, frames=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    mu = torch.rand(batch, frames, K, 2, generator=g) * 2 - 1
    a = torch.randn(batch, frames, K, 2, 2, generator=g) * 0.2
    return mu, a @ a.transpose(-1, -2) + 0.01 * torch.eye(2)


def test_roll_out_shapes_and_kept_covariances():
    model = make().eval()
    mu, cov = sequence()
    out = model(mu, cov, future_steps=5)
    assert out.predicted_landmarks.shape == (2, 5, K, 2) and out.loss is None
    assert torch.equal(out.predicted_covariances, cov[:, -1:].expand(-1, 5, -1, -1, -1))
    assert model(mu).predicted_landmarks.shape == (2, 2, K, 2)  # config.future_frames by default
    assert model(mu).predicted_covariances is None
    hidden = model(mu, future_steps=4, output_hidden_states=True).hidden_states
    assert len(hidden) == 1 and hidden[0].shape == (2, 3 + 4 - 1, 16)


def test_with_covariances_the_predicted_ones_are_symmetric_positive_definite():
    model = make(use_covariance=True).eval()
    mu, cov = sequence()
    out = model(mu, cov, future_steps=4)
    assert out.predicted_covariances.shape == (2, 4, K, 2, 2)
    assert torch.allclose(out.predicted_covariances, out.predicted_covariances.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(out.predicted_covariances) > 0).all()
    with pytest.raises(ValueError, match="use_covariance=True"):
        model(mu)


def manual_steps(model, mu, inputs_after_past):
    """Predictions by hand: the LSTM over the past, then one step per given input, each prediction being the
    previous input plus the head of the LSTM's top output."""
    outputs, state = model.lstm(mu.flatten(2))
    previous, predictions = mu[:, -1].flatten(1), []
    predictions.append(previous + model.head(outputs[:, -1]))
    for nxt in inputs_after_past:
        outputs, state = model.lstm(nxt.flatten(1)[:, None], state)
        predictions.append(nxt.flatten(1) + model.head(outputs[:, -1]))
    return torch.stack(predictions, 1).view(mu.shape[0], -1, K, 2)


def test_teacher_forcing_feeds_the_true_landmarks_in_training_and_predictions_in_evaluation():
    model = make()  # dropout 0: training and evaluation differ only by teacher forcing
    mu, _ = sequence(frames=3)
    labels, _ = sequence(frames=3, seed=2)
    model.train()
    out = model(mu, labels=labels)
    forced = manual_steps(model, mu, [labels[:, 0], labels[:, 1]])
    assert torch.allclose(out.predicted_landmarks, forced, atol=1e-6)
    assert torch.allclose(out.loss, F.mse_loss(forced, labels), atol=1e-7)
    model.eval()
    free = model(mu, labels=labels)
    first = manual_steps(model, mu, [])[:, 0]
    assert torch.allclose(free.predicted_landmarks[:, 0], first, atol=1e-6)  # the first step sees only the past
    rolled = manual_steps(model, mu, [first])
    assert torch.allclose(free.predicted_landmarks[:, :2], rolled, atol=1e-6)
    assert not torch.allclose(free.predicted_landmarks[:, 1], out.predicted_landmarks[:, 1])
    off = make(teacher_forcing=False).train()
    assert torch.allclose(off(mu, labels=labels).predicted_landmarks, model(mu, labels=labels).predicted_landmarks)


def test_training_lowers_the_l2_loss_on_a_moving_sequence():
    model = make(seed=3).train()
    t = torch.arange(5.0).view(1, 5, 1, 1) * 0.1
    track = torch.stack([torch.tensor([-0.5, 0.2, 0.0]), torch.tensor([0.1, -0.3, 0.4])], -1).view(1, 1, K, 2) + t
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model(track[:, :3], labels=track[:, 3:]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]


def test_save_and_load_by_auto_model_gives_equal_roll_outs(tmp_path):
    model = make(use_covariance=True).eval()
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "adlr_landmark_dynamics"
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is LandmarkDynamicsModel
    mu, cov = sequence()
    assert torch.equal(loaded(mu, cov, future_steps=3).predicted_landmarks,
                       model(mu, cov, future_steps=3).predicted_landmarks)


def test_predict_frames_decodes_the_roll_out_with_the_last_frames_appearance():
    torch.manual_seed(0)
    landmarks = StandInLandmarks(num_landmarks=K, image_size=16)
    landmarks.config = SimpleNamespace(num_landmarks=K)
    model = make().eval()
    frames = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    out = model.predict_frames(landmarks, frames, steps=4)
    assert out.shape == (2, 4, 3, 16, 16)
    pose = landmarks.encode_pose(frames.flatten(0, 1))
    mu, cov, heat = (x.view(2, 3, *x.shape[1:]) for x in (pose.mu, pose.covariance, pose.heatmaps))
    rolled = model(mu, cov, future_steps=4)
    appearance = landmarks.encode_appearance(frames[:, -1], mu[:, -1], cov[:, -1], heat[:, -1])
    for s in range(4):
        expected = landmarks.decode(appearance, rolled.predicted_landmarks[:, s], rolled.predicted_covariances[:, s])
        assert torch.allclose(out[:, s], expected, atol=1e-6)  # no_grad LSTM kernels round differently


def test_a_landmark_model_with_another_k_is_one_clear_error():
    landmarks = StandInLandmarks(num_landmarks=5, image_size=16)
    landmarks.config = SimpleNamespace(num_landmarks=5)
    with pytest.raises(ValueError, match="K=3 landmarks but the landmark model has K=5"):
        make().predict_frames(landmarks, torch.zeros(1, 3, 3, 16, 16), steps=2)
    with pytest.raises(ValueError, match="differs from the landmark model's num_landmarks=30"):
        LandmarkDynamicsConfig(num_landmarks=3, landmark_config={"num_landmarks": 30})
    assert LandmarkDynamicsConfig(landmark_config={"num_landmarks": 7}).num_landmarks == 7
    with pytest.raises(ValueError, match=r"landmarks must be \[batch, past frames, 3, 2\]"):
        make()(torch.zeros(2, 3, 5, 2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_size=0), "hidden_size"), (dict(dropout=1.0), "dropout"), (dict(past_frames=0), "past_frames"),
    (dict(covariance_loss_weight=-1), "covariance_loss_weight"),
])
def test_bad_config_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LandmarkDynamicsConfig(**kwargs)
    with pytest.raises(ValueError, match="no tensor-parallel plan"):
        LandmarkDynamicsConfig().check_tp_size(2)
