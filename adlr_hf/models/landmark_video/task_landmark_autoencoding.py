"""`landmark-autoencoding`: trains the unsupervised landmark model by reconstruction (Shih et al., arXiv 1909.02749;
reference NVIDIA/UnsupervisedLandmarkLearning `train.py`, `configs/train_args_bbc_pose.yaml`).

Each sample is a frame A of a clip: its landmarks come from A colour-jittered, its appearance from another frame of
the clip `--gap-min`..`--gap-max` frames away (3..40, the reference's BBC setting, `--appearance-source temporal`),
from A warped by a random thin-plate spline (`warped`), or both (two pairs per sample); the target is A. Frames are
cropped around optional per-frame boxes (± 60 px; else to their centred square) and resized to the model's
`image_size` squared, in [-1, 1] (`adlr_hf.data.landmark_clips`). The loss is the reference's VGG19 perceptual loss
with `--vgg19-weights FILE` (a local torchvision VGG19 state dict), else L1 + (1 - SSIM). Training-time evaluation
reconstructs held-out frames (the last `--eval-fraction` of each clip) from the frame `--gap-min` before or after and
reports PSNR / SSIM beside the appearance frame's own (copying the other frame)."""

from __future__ import annotations

from pathlib import Path

import torch

from ...family import Option
from ...tasks import video_data as video
from ...tasks.base import Task, TaskRun, _fmt_int

GAP_MIN, GAP_MAX = 3, 40

OPTIONS = (
    Option("--gap-min", dict(type=int, default=GAP_MIN, help="landmark-autoencoding: the appearance frame is at least "
                                                             "N frames from the pose frame (3 in the reference)")),
    Option("--gap-max", dict(type=int, default=GAP_MAX, help="landmark-autoencoding: ... and at most N frames (40 in "
                                                             "the reference)")),
    Option("--appearance-source", dict(default="temporal", choices=["temporal", "warped", "both"],
                                       help="landmark-autoencoding: the appearance frame: another frame of the clip "
                                            "(temporal, the reference's BBC setting), the pose frame warped by a "
                                            "random thin-plate spline (warped), or both (two pairs per sample)")),
    Option("--vgg19-weights", dict(default=None, help="landmark-autoencoding: a local torchvision VGG19 state dict "
                                                      "for the reference's perceptual loss (default: L1 + SSIM)")),
)


def to_255(frames: torch.Tensor) -> torch.Tensor:
    """[-1, 1] frames -> [0, 255]."""
    return (frames.detach().float() + 1) * 127.5


class LandmarkReconstructionMetric(video.MeanFrameMetric):
    """Held-out reconstruction PSNR / SSIM (8-bit) and the PSNR of the appearance frame itself as the reconstruction
    (what copying the other frame scores)."""

    keys = ("psnr", "ssim", "appearance_frame_psnr")

    def values(self, outputs, batch) -> dict[str, torch.Tensor]:
        target = to_255(batch["labels"])
        scored = video.score_frames(to_255(outputs.reconstruction), target)
        copied = video.score_frames(to_255(batch["pixel_values_videos"][:, 1]), target, quantize=False)
        return {"psnr": scored["psnr"], "ssim": scored["ssim"], "appearance_frame_psnr": copied["psnr"]}


class LandmarkAutoencodingTask(Task):
    name = "landmark-autoencoding"
    description = "unsupervised landmarks learnt by reconstructing a frame from its landmarks and another frame"
    auto_class_name = "AutoModel"
    unit = "frames"
    small_scale_below = 1_000_000
    full_scale = "the reference's BBC Pose model (2000 epochs of BBC Pose)"
    arguments = OPTIONS

    def fits(self, config) -> bool:
        model_class = self.model_class(config)
        return model_class is not None and all(callable(getattr(model_class, m, None))
                                               for m in ("encode_pose", "encode_appearance", "decode"))

    def check_args(self, args, config) -> None:
        """The gaps, every clip's length and boxes file, the VGG19 file: checked before any folder is written."""
        from ...data.landmark_clips import check_gaps

        check_gaps(args.data, args.gap_min, args.gap_max)
        if not 0.0 <= args.eval_fraction < 1.0:
            raise ValueError(f"--eval-fraction {args.eval_fraction} must be in [0, 1)")
        if args.vgg19_weights is not None:
            from .vgg19_features import check_vgg19_file

            check_vgg19_file(args.vgg19_weights)

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ...data.landmark_clips import LandmarkPairs, landmark_collate, load_landmark_clips

        self.check_args(args, config)
        train, held = load_landmark_clips(args.data, args.gap_min, args.gap_max, args.eval_fraction)
        size = config.image_size
        train_set = LandmarkPairs(train, size, args.gap_min, args.gap_max, args.appearance_source, random=True,
                                  seed=args.seed)
        eval_set = LandmarkPairs(held, size, args.gap_min, args.gap_max, "temporal", random=False) if held else None
        extra = {"gap_min": args.gap_min, "gap_max": args.gap_max, "appearance_source": args.appearance_source,
                 "image_size": size, "train_frames": len(train_set),
                 "held_out_frames": len(eval_set) if eval_set is not None else 0,
                 "boxes": any(p.boxes is not None for p in train),
                 "perceptual": str(Path(args.vgg19_weights).resolve()) if args.vgg19_weights else None,
                 "gan": ({"weight": config.gan_weight, "discriminators": config.num_discriminators}
                         if config.use_gan else None)}
        metric = LandmarkReconstructionMetric.for_eval_set(eval_set)
        return TaskRun(config, train_set, eval_set, landmark_collate, 1, None, list(args.data),
                       eval_collate=landmark_collate, metric=metric, extra_info=extra)

    def build_model(self, run: TaskRun, init_from: Path | None):
        """The model, with frozen VGG19 features attached (outside its modules) when --vgg19-weights is given; they
        load outside the seeded RNG stream, so the model's initial weights do not depend on them."""
        model = super().build_model(run, init_from)
        if run.extra_info.get("perceptual"):
            from .vgg19_features import load_vgg19_features

            with torch.random.fork_rng(devices=[]):
                model.set_perceptual_network(load_vgg19_features(run.extra_info["perceptual"]))
        return model

    def build_optimizer(self, model, args) -> torch.optim.Optimizer:
        """Adam with L2 weight decay, as the reference (lr 1e-4, wd 5e-6 in its BBC config)."""
        return video.reference_adam(model, args)

    # -- the card -------------------------------------------------------------------------------------------------
    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        loss = ("VGG19 perceptual (relu1_2..relu4_2 + pixels, weights 1/32..1/4, 1; x5) with "
                f"`{Path(training['perceptual']).name}`") if training.get("perceptual") else \
            "L1 + (1 - SSIM) (no local VGG19 weights were given)"
        rows = [("reconstructed frames", _fmt_int(training.get("frames"))),
                ("appearance frame", {"temporal": "another frame of the clip",
                                      "warped": "the pose frame, TPS-warped",
                                      "both": "another frame and the TPS-warped pose frame"}.get(
                    training.get("appearance_source"), "n/a")),
                ("frame gap", f"{training.get('gap_min')}..{training.get('gap_max')}"),
                ("crop", f"{training.get('image_size')}² "
                         f"({'boxes ± 60 px' if training.get('boxes') else 'centred squares'})"),
                ("loss", loss + (f" + multi-scale LSGAN ({training['gan']['discriminators']} discriminators, weight "
                                 f"{training['gan']['weight']:g})" if training.get("gan") else ""))]
        if training.get("eval_psnr") is not None:
            rows.append(("held-out reconstruction PSNR / SSIM (appearance frame: PSNR)",
                         f"{training['eval_psnr']:.2f} dB / {training['eval_ssim']:.4f} "
                         f"({training['eval_appearance_frame_psnr']:.2f} dB)"))
        return rows

    def limitations(self, training: dict | None) -> list[str]:
        out = super().limitations(training)
        if training and not training.get("perceptual"):
            out.append("It was trained with L1 + SSIM instead of the reference's VGG19 perceptual loss: no local "
                       "VGG19 weights were given.")
        return out
