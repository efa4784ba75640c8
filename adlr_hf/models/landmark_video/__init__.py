"""Video interpolation and prediction with unsupervised landmarks (Shih et al., arXiv 1909.02749; landmark model after
NVIDIA/UnsupervisedLandmarkLearning): the part-factorised landmark model (pose encoder, Cauchy-like landmark rendering,
per-part appearance, SPADE decoder) trained by reconstruction (`landmark-autoencoding`)."""

from ...family import CardFacts, FamilySpec, Paper, Variant
from .configuration_landmark_dynamics import LandmarkDynamicsConfig
from .configuration_landmark_video import LandmarkVideoConfig
from .interpolation_landmarks import interpolate_frames, interpolate_landmarks
from .modeling_landmark_dynamics import LandmarkDynamicsModel, LandmarkDynamicsOutput, LandmarkDynamicsPreTrainedModel
from .modeling_landmark_video import (
    LandmarkAppearance,
    LandmarkOutput,
    LandmarkVideoModel,
    LandmarkVideoOutput,
    LandmarkVideoPreTrainedModel,
)
from .task_landmark_autoencoding import LandmarkAutoencodingTask
from .task_landmark_dynamics import LandmarkDynamicsTask, register_landmark_pipeline

PAPER = Paper("Video Interpolation and Prediction with Unsupervised Landmarks", ("1909.02749", "2001.09518"),
              "https://github.com/NVIDIA/UnsupervisedLandmarkLearning")

TINY = dict(num_landmarks=8, pose_encoder_filters=4, pose_decoder_channels=(32, 16, 16), appearance_channels=8,
            appearance_encoder_filters=8, appearance_decoder_channels=16, decoder_filters=16, spade_hidden=16,
            image_size=64)

SPEC = FamilySpec(
    name="landmark_video",
    config_class=LandmarkVideoConfig,
    models={"AutoModel": LandmarkVideoModel},
    default_task="landmark-autoencoding",
    tasks=(LandmarkAutoencodingTask(),),
    variants=(
        Variant("landmark-video-tiny", TINY, "8 landmarks at reduced widths, 64x64 crops, for tests and demos"),
        Variant("landmark-video-bbc", dict(num_landmarks=30, image_size=128),
                "the reference's BBC Pose model: K = 30, 128x128 crops, nsf 6, ngc 64, 32-d appearance"),
        Variant("landmark-video-bbc-fgbg", dict(num_landmarks=30, image_size=128, use_fg_bg_mask=True),
                "the BBC model with the reference's foreground/background masks"),
        Variant("landmark-video-bbc-gan", dict(num_landmarks=30, image_size=128, use_gan=True),
                "the BBC model with the reference's optional multi-scale LSGAN (2 PatchGANs, 3 layers, ndf 64)"),
    ),
    card=CardFacts(
        title="Unsupervised landmark video model",
        paper=PAPER,
        description="an unsupervised landmark model for video: a U-Net pose encoder turns a frame into K heatmaps "
                    "whose soft-argmax means and covariances are landmarks, rendered as Cauchy-like maps; per-part "
                    "appearance vectors pooled from another frame are painted on those maps and a SPADE generator "
                    "decodes the frame. Trained only by reconstructing a frame from its own landmarks and the "
                    "appearance of another frame of the clip, the landmarks follow the moving parts; interpolating "
                    "or predicting them over time and decoding gives new frames",
        intended_use="Research on unsupervised landmarks, landmark-space video interpolation and prediction of "
                     "faces and bodies in roughly framed clips.",
        license_notes="The reference code (NVIDIA/UnsupervisedLandmarkLearning) is NVIDIA's; its SPADE parts are "
                      "CC BY-NC-SA 4.0. Weights trained on third-party footage carry that footage's terms.",
        tags=("video-interpolation", "video-prediction", "unsupervised-landmarks", "spade", "tensor-parallelism"),
        limitations=(
            "Landmarks are unsupervised: their order and meaning differ between trainings, and they only map to "
            "named keypoints through a regression fitted on annotated frames.",
            "The decoder renders the appearance of a reference frame: content that the reference frame does not show "
            "(disocclusions, a turned-away face) is invented.",
            "With `use_gan` (the reference's optional LSGAN: sharper reconstructions, less accurate landmarks) the "
            "discriminator is trained in the model's own optimizer step, so it shares the model's weight decay and "
            "gradient clipping (the reference gives it a second Adam without decay, clipped on its own); the saved "
            "model carries the discriminator's weights.",
        )),
    unsupported={"output_attentions": "a convolutional model has no attention",
                 "gradient_checkpointing": "its U-Nets and SPADE blocks are not checkpointable layers",
                 "resize_token_embeddings": "a video model has no token embeddings"},
)


# The temporal model: its own config and model type (`adlr_landmark_dynamics`), so a second spec in this folder.
DYNAMICS_SPEC = FamilySpec(
    name="landmark_dynamics",
    config_class=LandmarkDynamicsConfig,
    models={"AutoModel": LandmarkDynamicsModel},
    default_task="landmark-dynamics",
    tasks=(LandmarkDynamicsTask(),),
    register=register_landmark_pipeline,  # pipeline("landmark-video"): landmarks, interpolated or predicted frames
    variants=(
        Variant("landmark-dynamics-tiny", dict(num_landmarks=8, hidden_size=64, num_layers=1),
                "an LSTM over the 8 landmarks of landmark-video-tiny, for tests and demos"),
        Variant("landmark-dynamics-bbc", dict(num_landmarks=30, hidden_size=256, num_layers=2),
                "a 2-layer LSTM (256) over the 30 landmarks of landmark-video-bbc"),
    ),
    card=CardFacts(
        title="Landmark dynamics (video prediction in landmark space)",
        paper=PAPER,
        description="a recurrent video predictor in landmark space: an LSTM reads the landmark coordinates (and "
                    "optionally covariances) that a frozen unsupervised landmark model extracts from the past "
                    "frames, rolls out the next ones, and the landmark model decodes them with the appearance of "
                    "the last frame. The paper's temporal model was never released: this one follows its "
                    "description, with every choice documented",
        intended_use="Research on video prediction in landmark space for faces and bodies in roughly framed clips.",
        license_notes="Weights trained on third-party footage carry that footage's terms.",
        tags=("video-prediction", "unsupervised-landmarks", "lstm"),
    ),
    unsupported={"output_attentions": "a recurrent model has no attention",
                 "gradient_checkpointing": "a small LSTM: nothing worth recomputing",
                 "resize_token_embeddings": "a landmark model has no token embeddings",
                 "tensor_parallel": "the recurrence runs on one process (no TP plan)"},
)

__all__ = ["SPEC", "DYNAMICS_SPEC", "LandmarkDynamicsConfig", "LandmarkDynamicsModel", "LandmarkDynamicsOutput",
           "LandmarkDynamicsPreTrainedModel", "LandmarkDynamicsTask", "interpolate_frames", "interpolate_landmarks",
           "LandmarkAppearance", "LandmarkOutput", "LandmarkVideoConfig", "LandmarkVideoModel",
           "LandmarkVideoOutput", "LandmarkVideoPreTrainedModel"]
