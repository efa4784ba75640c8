"""Video prediction in landmark space: an LSTM over landmark coordinates (Shih et al., "Video Interpolation and
Prediction with Unsupervised Landmarks", arXiv 1909.02749). The paper's temporal model was never released
(NVIDIA/UnsupervisedLandmarkLearning, the landmark model's reference, "does not include the temporal dynamics
model"); this one is built from the paper's description and every choice is documented here and in the config.

A step reads the landmarks of one frame, flattened to K·2 numbers (K·5 with the covariances' log-Cholesky
coordinates), and the LSTM's top output predicts the change to the next frame's (a residual: an untrained model
starts near copying the last landmarks). The past n sets warm the state up; the roll-out then feeds each
prediction back (or, in training with `teacher_forcing`, the true previous landmarks). Loss: the mean squared error
of the predicted coordinates (plus `covariance_loss_weight` × that of the log-Cholesky coordinates with
`use_covariance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_landmark_dynamics import LandmarkDynamicsConfig

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.landmark_video.interpolation_landmarks import (
        calibrate_warp_gain,
        check_synthesis,
        from_log_cholesky,
        to_log_cholesky,
        warp_with_gain,
    )
    from adlr_hf.models.shared.modeling_adlr import AdlrPreTrainedModel
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries these files
    from .interpolation_landmarks import (
        calibrate_warp_gain,
        check_synthesis,
        from_log_cholesky,
        to_log_cholesky,
        warp_with_gain,
    )
    from .modeling_adlr import AdlrPreTrainedModel


@dataclass
class LandmarkDynamicsOutput(ModelOutput):
    """`predicted_landmarks` [B, m, K, 2] (coordinates in [-1, 1] as the landmark model's), `predicted_covariances`
    [B, m, K, 2, 2] (predicted with `use_covariance`, else the last observed ones repeated; None when none were
    given), `hidden_states`: (the LSTM's top output at every step read [B, n + m - 1, H],) when asked for."""

    loss: torch.Tensor | None = None
    predicted_landmarks: torch.Tensor | None = None
    predicted_covariances: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class LandmarkDynamicsPreTrainedModel(AdlrPreTrainedModel):
    config_class = LandmarkDynamicsConfig
    base_model_prefix = "dynamics"
    main_input_name = "landmarks"
    _no_split_modules = ["LandmarkDynamicsModel"]
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=0.02)
            init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):  # torch's own LSTM initialisation: U(-1/√H, 1/√H)
            bound = module.hidden_size ** -0.5
            for weight in module.parameters():
                init.uniform_(weight, -bound, bound)


class LandmarkDynamicsModel(LandmarkDynamicsPreTrainedModel):
    """The LSTM and its output projection; `forward` rolls out and scores, `predict_frames` decodes a roll-out to
    frames through a landmark model."""

    def __init__(self, config: LandmarkDynamicsConfig):
        super().__init__(config)
        width = config.num_landmarks * config.features_per_landmark
        self.lstm = nn.LSTM(width, config.hidden_size, num_layers=config.num_layers, batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, width)
        self.post_init()

    # -- landmark sets <-> the numbers a step reads ----------------------------------------------------------------
    def features(self, landmarks: torch.Tensor, covariances: torch.Tensor | None) -> torch.Tensor:
        """[B, T, K, 2] (+ [B, T, K, 2, 2]) -> [B, T, K·F]."""
        parts = [landmarks]
        if self.config.use_covariance:
            parts.append(to_log_cholesky(covariances.float()).to(landmarks.dtype))
        return torch.cat(parts, dim=-1).flatten(2)

    def split(self, features: torch.Tensor):
        """[B, T, K·F] -> (coordinates [B, T, K, 2], log-Cholesky coordinates [B, T, K, 3] or None)."""
        per_landmark = features.unflatten(-1, (self.config.num_landmarks, self.config.features_per_landmark))
        return per_landmark[..., :2], (per_landmark[..., 2:] if self.config.use_covariance else None)

    def _check(self, landmarks, covariances, labels, label_covariances):
        k = self.config.num_landmarks
        if landmarks.dim() != 4 or landmarks.shape[2:] != (k, 2):
            raise ValueError(f"landmarks must be [batch, past frames, {k}, 2] (K={k} landmarks of this dynamics "
                             f"model), got {tuple(landmarks.shape)}; a landmark model with another K needs its own "
                             "dynamics model")
        if covariances is not None and covariances.shape != (*landmarks.shape, 2):
            raise ValueError(f"covariances must be [batch, past frames, {k}, 2, 2] like the landmarks, got "
                             f"{tuple(covariances.shape)}")
        if self.config.use_covariance and covariances is None:
            raise ValueError("this dynamics model reads covariances (use_covariance=True): pass covariances "
                             "[batch, past frames, K, 2, 2]")
        if labels is not None and (labels.dim() != 4 or labels.shape[0] != landmarks.shape[0]
                                   or labels.shape[2:] != (k, 2)):
            raise ValueError(f"labels must be the future landmarks [batch, future frames, {k}, 2], got "
                             f"{tuple(labels.shape)}")
        if label_covariances is not None and (labels is None or label_covariances.shape != (*labels.shape, 2)):
            raise ValueError("label_covariances must come with labels and be [batch, future frames, K, 2, 2]")

    def _teacher(self, predicted, labels, label_covariances, step):
        """Teacher forcing: the true landmarks of `step` replace the prediction as the next step's input (the true
        covariances too where given; else the predicted ones stay)."""
        _, predicted_log_chol = self.split(predicted[:, None])
        if predicted_log_chol is None:
            return labels[:, step].flatten(1)
        log_chol = predicted_log_chol[:, 0] if label_covariances is None else \
            to_log_cholesky(label_covariances[:, step].float()).to(labels.dtype)
        return torch.cat([labels[:, step], log_chol], dim=-1).flatten(1)

    def forward(self, landmarks: torch.Tensor, covariances: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, label_covariances: torch.Tensor | None = None,
                future_steps: int | None = None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        """`landmarks` [B, n, K, 2]: the past landmark sets (`covariances` [B, n, K, 2, 2] beside them). Rolls out
        `labels.shape[1]` steps when `labels` (the true future landmarks [B, m, K, 2]) are given, else
        `future_steps` (default `config.future_frames`)."""
        _, output_hidden_states, return_dict = self.output_options(output_attentions, output_hidden_states,
                                                                   return_dict)
        self._check(landmarks, covariances, labels, label_covariances)
        steps = labels.shape[1] if labels is not None else (future_steps or self.config.future_frames)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"future_steps={future_steps!r} must be an integer >= 1")
        past = self.features(landmarks, covariances)
        forced = labels is not None and self.training and self.config.teacher_forcing
        outputs, state = self.lstm(past)
        tops, predictions = [outputs], []
        previous = past[:, -1]
        for step in range(steps):
            predicted = previous + self.head(self.dropout(outputs[:, -1]))
            predictions.append(predicted)
            if step == steps - 1:
                break
            previous = self._teacher(predicted, labels, label_covariances, step) if forced else predicted
            outputs, state = self.lstm(previous[:, None], state)
            tops.append(outputs)
        predicted_mu, predicted_log_chol = self.split(torch.stack(predictions, dim=1))
        if predicted_log_chol is not None:
            predicted_cov = from_log_cholesky(predicted_log_chol.float()).to(predicted_mu.dtype)
        elif covariances is not None:
            predicted_cov = covariances[:, -1:].expand(-1, steps, -1, -1, -1)
        else:
            predicted_cov = None
        loss = None
        if labels is not None:
            loss = F.mse_loss(predicted_mu, labels)
            if predicted_log_chol is not None and label_covariances is not None:
                target = to_log_cholesky(label_covariances.float()).to(predicted_log_chol.dtype)
                loss = loss + self.config.covariance_loss_weight * F.mse_loss(predicted_log_chol, target)
        hidden = (torch.cat(tops, dim=1),) if output_hidden_states else None
        if not return_dict:
            return tuple(v for v in (loss, predicted_mu, predicted_cov, hidden) if v is not None)
        return LandmarkDynamicsOutput(loss, predicted_mu, predicted_cov, hidden)

    @torch.no_grad()
    def predict_frames(self, landmark_model, frames: torch.Tensor, steps: int,
                       synthesis: str = "decoder") -> torch.Tensor:
        """The next `steps` frames after `frames` [N, n, 3, H, W] (in [-1, 1]): the landmark model's landmarks of
        the n frames, rolled out by this model, and made into frames by `synthesis`: "decoder" decodes them with the
        appearance of the last given frame; "warp" moves the last given frame to them by the landmarks' displacement
        field (`landmark_model.warp`) with the gain that best explains the last two given frames by each other
        (`calibrate_warp_gain`; 1 when only one frame is given). A roll-out that stays put copies the last frame.
        Returns [N, steps, 3, H, W] in [-1, 1]."""
        self.config.check_landmark_model(landmark_model.config)
        check_synthesis(synthesis)
        if frames.dim() != 5:
            raise ValueError(f"frames must be [N, past frames, 3, H, W], got {tuple(frames.shape)}")
        n, t = frames.shape[:2]
        pose = landmark_model.encode_pose(frames.flatten(0, 1))
        mu = pose.mu.view(n, t, *pose.mu.shape[1:])
        covariance = pose.covariance.view(n, t, *pose.covariance.shape[1:])
        rolled = self(mu.to(self.dtype), covariance.to(self.dtype), future_steps=steps, return_dict=True)
        future_mu = rolled.predicted_landmarks.to(mu.dtype)
        future_cov = rolled.predicted_covariances.to(covariance.dtype)
        if synthesis == "warp":  # the field's gain calibrated on the last two given frames (1 with only one)
            gain = torch.ones(n, dtype=torch.float64) if t < 2 else calibrate_warp_gain(
                landmark_model, frames[:, -2], frames[:, -1], mu[:, -2], covariance[:, -2], mu[:, -1],
                covariance[:, -1])
            return torch.stack([warp_with_gain(landmark_model, frames[:, -1], mu[:, -1], future_mu[:, s],
                                               future_cov[:, s], gain) for s in range(steps)], dim=1)
        heatmaps = None if pose.heatmaps is None else pose.heatmaps.view(n, t, *pose.heatmaps.shape[1:])[:, -1]
        appearance = landmark_model.encode_appearance(frames[:, -1], mu[:, -1], covariance[:, -1], heatmaps)
        return torch.stack([landmark_model.decode(appearance, future_mu[:, s], future_cov[:, s])
                            for s in range(steps)], dim=1)


__all__ = ["LandmarkDynamicsModel", "LandmarkDynamicsOutput", "LandmarkDynamicsPreTrainedModel"]
