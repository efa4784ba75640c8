"""Configuration of the landmark dynamics model: video prediction in landmark space (Shih et al., "Video
Interpolation and Prediction with Unsupervised Landmarks", arXiv 1909.02749). The paper's temporal model was never
released (NVIDIA/UnsupervisedLandmarkLearning holds the landmark model only); this one follows the paper's
description: a recurrent model over the landmark coordinates."""

from transformers import PretrainedConfig

DEFAULT_LANDMARKS = 30  # K of the reference's BBC Pose setting


def _int_at_least(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return value


class LandmarkDynamicsConfig(PretrainedConfig):
    """An LSTM over the flattened landmark coordinates of a clip (K × 2 per frame, plus the covariances' K × 3
    log-Cholesky coordinates with `use_covariance`) that reads `past_frames` landmark sets and rolls out
    `future_frames` more.

    - `num_landmarks`: K, as the landmark model the sequences come from (default: `landmark_config`'s, else 30).
    - `landmark_config`: the landmark model's config (a dict; optional): the dynamics model is only meaningful with
      the landmark model whose landmarks it was trained on, so the task records it here and `check_landmark_model`
      refuses a landmark model with another K.
    - `hidden_size`, `num_layers`, `dropout`: the LSTM (dropout between its layers and on its output).
    - `use_covariance`: also read and predict the covariances (in log-Cholesky coordinates, so every predicted
      covariance is symmetric positive definite); without it a roll-out keeps the last observed covariances.
    - `covariance_loss_weight`: weight of the covariances' L2 term beside the coordinates' (with `use_covariance`).
    - `past_frames`, `future_frames`: n and m of a training sequence (the model rolls out any number of steps).
    - `teacher_forcing`: in training, each future step reads the true previous landmarks instead of the model's own
      prediction (evaluation always rolls out freely).

    The model predicts each step's change of the landmarks (a residual on the last ones), so an untrained model
    starts near copying the last landmarks. There is no tensor-parallel plan: the recurrence is small and runs on
    one process (`check_tp_size` rejects TP > 1).
    """

    model_type = "adlr_landmark_dynamics"

    def __init__(
        self,
        num_landmarks=None,
        landmark_config=None,
        hidden_size=256,
        num_layers=2,
        dropout=0.0,
        use_covariance=False,
        covariance_loss_weight=1.0,
        past_frames=4,
        future_frames=4,
        teacher_forcing=True,
        **kwargs,
    ):
        if landmark_config is not None and not isinstance(landmark_config, dict):
            landmark_config = landmark_config.to_dict()  # a PretrainedConfig: stored as the dict config.json holds
        if landmark_config is not None and "num_landmarks" in landmark_config:
            if num_landmarks is not None and num_landmarks != landmark_config["num_landmarks"]:
                raise ValueError(f"num_landmarks={num_landmarks} differs from the landmark model's "
                                 f"num_landmarks={landmark_config['num_landmarks']}; leave num_landmarks out to "
                                 "take the landmark model's")
            num_landmarks = landmark_config["num_landmarks"]
        num_landmarks = DEFAULT_LANDMARKS if num_landmarks is None else num_landmarks
        self.num_landmarks = _int_at_least("num_landmarks", num_landmarks, 1)
        self.landmark_config = landmark_config
        self.hidden_size = _int_at_least("hidden_size", hidden_size, 1)
        self.num_layers = _int_at_least("num_layers", num_layers, 1)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout!r} must be a probability in [0, 1)")
        self.dropout = float(dropout)
        self.use_covariance = bool(use_covariance)
        if isinstance(covariance_loss_weight, bool) or not isinstance(covariance_loss_weight, (int, float)) or \
                covariance_loss_weight < 0:
            raise ValueError(f"covariance_loss_weight={covariance_loss_weight!r} must be a number >= 0")
        self.covariance_loss_weight = float(covariance_loss_weight)
        self.past_frames = _int_at_least("past_frames", past_frames, 1)
        self.future_frames = _int_at_least("future_frames", future_frames, 1)
        self.teacher_forcing = bool(teacher_forcing)
        super().__init__(**kwargs)

    @property
    def features_per_landmark(self) -> int:
        """Numbers per landmark and frame the LSTM reads: (x, y), plus (log L00, L10, log L11) of Σ = L Lᵀ."""
        return 5 if self.use_covariance else 2

    def check_landmark_model(self, landmark_config) -> None:
        """One clear error when a landmark model's K differs from this dynamics model's."""
        k = getattr(landmark_config, "num_landmarks", None)
        if k != self.num_landmarks:
            raise ValueError(f"the dynamics model predicts K={self.num_landmarks} landmarks but the landmark model "
                             f"has K={k}; use the landmark model the dynamics model was trained on (or train one "
                             f"with --init-from that landmark model)")

    def check_tp_size(self, tp_size: int) -> None:
        if tp_size != 1:
            raise ValueError(f"the landmark dynamics LSTM has no tensor-parallel plan (got tp_size={tp_size}); train "
                             "it with --tp 1 and scale with data parallelism")


__all__ = ["LandmarkDynamicsConfig"]
