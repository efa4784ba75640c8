"""`adlr-hf evaluate MODEL --task landmark-interpolation | landmark-prediction --data CLIPS`: frame quality of
landmark-space interpolation and prediction (Shih et al., arXiv 1909.02749) against held-out real frames, beside
baselines scored on the same frames in the same run, and the landmark regression protocol of the landmark model's
reference (NVIDIA/UnsupervisedLandmarkLearning, `scripts/map_to_supervised_landmarks_bbc.py` and
`scripts/eval_supervised_landmarks_bbc.py`).

- Interpolation (`--gaps 3 7`, `--interpolation linear|cubic`): in every clip the key frames are every gap + 1
  frames (0, g+1, 2(g+1), ...); the g frames between two keys are interpolated in landmark space and decoded with the
  nearest key frame's appearance (`interpolation_landmarks.interpolate_frames`); `landmark_warp_*`: the same
  interpolated landmarks made into frames by warping the two key frames to them and blending by time
  (`synthesis="warp"`, the key frames' own pixels instead of the decoder's). Baseline: frame averaging
  (1 − t)·I0 + t·I1 at the same t; with `--interpolation-model DIR` also a trained frame-interpolation model of
  the video families (`interpolation_model_*`: the frames between the same two key frames at the same t). The
  headline numbers are those of the longest gap.
- Prediction (`--horizon 10`): windows of context + horizon frames, starting every horizon frames, where the
  context is past_frames (or, with `--prediction-model`, the longer of past_frames and that model's
  sequence_length); the dynamics model rolls out the landmarks of the last past_frames context frames and the
  landmark model decodes them with the last context frame's appearance (`landmark_warp_*`: the last context frame
  warped to them instead). Baselines: copying the last context frame;
  with `--prediction-model DIR` a trained next-frame model of the video families (`prediction_model_*`), rolled out
  autoregressively from its last sequence_length context frames (its predictions fed back, flows from its
  configured flow source). Scores per step (step1 ... stepH) and over all steps.
- The baseline models (`baseline_video_models`) see the same frames in [0, 255], padded to their size divisor by
  their own video processor and cropped back.
- Frames are centre-cropped to a square and resized to the landmark model's image_size (as the dynamics task reads
  them), scored in 8 bits with the shared PSNR / SSIM (`adlr_hf/metrics/psnr`, `ssim`).
- Keypoints (`--keypoints FILE`, interpolation): landmarks of the annotated frames are regressed to the keypoints by
  least squares without intercept (the reference's `Ridge(alpha=0, fit_intercept=False)`) in box-normalised
  coordinates (the crop box: (x − box_min) / box_size − 0.5), fitted on the first half of the annotated frames (clip
  and frame order) and tested on the rest; scored as the reference's BBC script: the fraction of keypoints within 6
  pixels after halving the coordinates (0.5·(p − 1) + 1), and the mean error as a fraction of the box side.
- The interpolation result carries the card's picture of the landmark model (`figures_landmark_video`: frame 0 of
  the first clip with its landmarks, their rendered maps, the decoded frame), written beside the card by
  `--update-card`. The result names the model folder (a run folder's model/), where `--update-card` records it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ...tasks import video_data as video
from .baseline_video_models import INTERPOLATION, PREDICTION, BaselineModel, check_baseline_folder
from .figures_landmark_video import landmark_figure
from .interpolation_landmarks import interpolate_frames
from .task_landmark_dynamics import LANDMARK_MODEL_DIR, load_landmark_model, read_clip

INTERPOLATION_TASK, PREDICTION_TASK = "landmark-interpolation", "landmark-prediction"
BBC_RADIUS = 6.0  # pixels, after the BBC toolkit's halving of coordinates


def to_pixels(frames: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 255] (the landmark model's normalisation undone)."""
    return (frames.float() + 1) * 127.5


def _model_type(folder: Path) -> str | None:
    path = folder / "config.json"
    return json.loads(path.read_text()).get("model_type") if path.is_file() else None


def model_folder(model_dir) -> Path:
    """MODEL itself, or the model/ of a training run folder when MODEL has no config.json."""
    folder = Path(model_dir).expanduser()
    if not (folder / "config.json").is_file() and (folder / "model" / "config.json").is_file():
        return folder / "model"
    return folder


def resolve_landmark_folder(model_dir, landmark_model=None) -> Path:
    """The landmark model to use: `landmark_model` when given, else MODEL itself when it is one, else the
    `landmark_model/` a dynamics export carries; MODEL may also be a training run folder (its model/)."""
    if landmark_model is not None:
        return Path(landmark_model).expanduser()
    folder = model_folder(model_dir)
    if _model_type(folder) == "adlr_landmark_video":
        return folder
    if _model_type(folder / LANDMARK_MODEL_DIR) == "adlr_landmark_video":
        return folder / LANDMARK_MODEL_DIR
    raise FileNotFoundError(f"{str(model_dir)!r} is neither a landmark model nor a dynamics model carrying one in "
                            f"{LANDMARK_MODEL_DIR}/; pass --landmark-model DIR")


def check_clip_lengths(data, needed: int, what: str) -> list:
    """The clips under `data`; a clip with fewer than `needed` frames is one clear error (before any model loads)."""
    from ...data.frames import find_clips

    clips = find_clips(os.path.expanduser(os.fspath(data)))
    short = [f"{c.name} ({c.num_frames} frames)" for c in clips if c.num_frames < needed]
    if short:
        raise ValueError(f"{what} needs clips of at least {needed} frames; shorter: {', '.join(short)}; lower it or "
                         "pass longer clips")
    return clips


def _mean(values: list[torch.Tensor]) -> float:
    return float(torch.cat(values).double().mean())


# -- interpolation ------------------------------------------------------------------------------------------------
def interpolation_plan(num_frames: int, gap: int) -> tuple[list[int], list[int]]:
    """(key frames, interpolated frames) of a clip: keys every gap + 1 frames, the frames strictly between them."""
    keys = list(range(0, num_frames, gap + 1))
    return keys, [q for q in range(keys[0], keys[-1]) if q not in keys]


@torch.no_grad()
def evaluate_interpolation(landmark_model, clips: dict[str, torch.Tensor], gaps=(3, 7), mode: str = "linear",
                           interpolation_model: BaselineModel | None = None) -> dict:
    """PSNR / SSIM of landmark-space interpolation, of frame averaging and (when given) of a frame-interpolation
    model at each gap; `clips` maps a name to its frames (T, 3, s, s) in [-1, 1]."""
    param = next(landmark_model.parameters())
    prefixes = ("", "landmark_warp_", "frame_average_") + (("interpolation_model_",) if interpolation_model is not None
                                                            else ())
    out = {}
    for gap in gaps:
        scores = {f"{prefix}{metric}": [] for prefix in prefixes for metric in ("psnr", "ssim")}
        for frames in clips.values():
            keys, queries = interpolation_plan(len(frames), gap)
            frames = frames.to(param.device, param.dtype)
            predicted = interpolate_frames(landmark_model, frames[keys][None], keys, queries, mode)[0]
            warped = interpolate_frames(landmark_model, frames[keys][None], keys, queries, mode, "warp")[0]
            before = torch.tensor([max(k for k in keys if k < q) for q in queries])
            t = ((torch.tensor(queries) - before) / (gap + 1)).to(frames).view(-1, 1, 1, 1)
            average = (1 - t) * frames[before] + t * frames[before + gap + 1]
            target = to_pixels(frames[queries])
            candidates = [("", to_pixels(predicted)), ("landmark_warp_", to_pixels(warped)),
                          ("frame_average_", to_pixels(average))]
            if interpolation_model is not None:  # the frames between consecutive keys, in the order of `queries`
                times = [i / (gap + 1) for i in range(1, gap + 1)]
                pixels = to_pixels(frames).cpu()
                between = interpolation_model.interpolate(pixels[keys[:-1]], pixels[keys[1:]], times)
                candidates.append(("interpolation_model_", between.flatten(0, 1).to(target)))
            for prefix, images in candidates:
                values = video.score_frames(images, target)
                scores[f"{prefix}psnr"].append(values["psnr"])
                scores[f"{prefix}ssim"].append(values["ssim"])
        out[f"gap{gap}"] = {k: _mean(v) for k, v in scores.items()}
        out[f"gap{gap}"]["num_frames"] = sum(len(v) for v in scores["psnr"])
    return {**out[f"gap{max(gaps)}"], "headline_gap": max(gaps), "per_gap": out}


# -- prediction -------------------------------------------------------------------------------------------------------
def prediction_context(dynamics_config, prediction_model: BaselineModel | None = None) -> int:
    """Frames before the first predicted one in every window: past_frames, or the baseline model's sequence_length
    when it reads more."""
    own = int(dynamics_config.past_frames)
    return own if prediction_model is None else max(own, prediction_model.context_frames)


@torch.no_grad()
def evaluate_prediction(dynamics, landmark_model, clips: dict[str, torch.Tensor], horizon: int = 10,
                        prediction_model: BaselineModel | None = None) -> dict:
    """PSNR / SSIM of landmark-space prediction, of copying the last frame and (when given) of a next-frame model's
    roll-out, per step 1..horizon and overall."""
    param = next(landmark_model.parameters())
    past = dynamics.config.past_frames
    context = prediction_context(dynamics.config, prediction_model)
    span = context + horizon
    prefixes = ("", "landmark_warp_", "copy_last_") + (("prediction_model_",) if prediction_model is not None else ())
    per_step = {f"{prefix}{metric}": [[] for _ in range(horizon)] for prefix in prefixes
                for metric in ("psnr", "ssim")}
    for frames in clips.values():
        starts = range(0, len(frames) - span + 1, horizon)
        windows = torch.stack([frames[s:s + span] for s in starts]).to(param.device, param.dtype)
        predicted = to_pixels(dynamics.predict_frames(landmark_model, windows[:, context - past:context], horizon))
        warped = to_pixels(dynamics.predict_frames(landmark_model, windows[:, context - past:context], horizon,
                                                   "warp"))
        rolled = None
        if prediction_model is not None:
            rolled = prediction_model.roll_out(to_pixels(windows[:, :context]).cpu(), horizon).to(predicted)
        for step in range(horizon):
            target = to_pixels(windows[:, context + step])
            candidates = [("", predicted[:, step]), ("landmark_warp_", warped[:, step]),
                          ("copy_last_", to_pixels(windows[:, context - 1]))]
            if rolled is not None:
                candidates.append(("prediction_model_", rolled[:, step]))
            for prefix, images in candidates:
                values = video.score_frames(images, target)
                per_step[f"{prefix}psnr"][step].append(values["psnr"])
                per_step[f"{prefix}ssim"][step].append(values["ssim"])
    metrics = {key: _mean([v for step in steps for v in step]) for key, steps in per_step.items()}
    metrics["per_step"] = {f"step{i + 1}": {key: _mean(steps[i]) for key, steps in per_step.items()}
                           for i in range(horizon)}
    metrics["num_windows"] = sum(len(v) for v in per_step["psnr"][0])
    return metrics


# -- landmark regression to annotated keypoints ----------------------------------------------------------------------
def fit_keypoint_regression(landmarks: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Least squares without intercept from flattened landmarks (N, K, 2) to flattened keypoints (N, J, 2):
    W (2K, 2J) minimising ||X W − Y||."""
    x, y = landmarks.flatten(1).double(), keypoints.flatten(1).double()
    return torch.linalg.lstsq(x, y, driver="gelsd").solution


def regress_keypoints(weights: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    return (landmarks.flatten(1).double() @ weights).view(len(landmarks), -1, 2)


def bbc_keypoint_scores(predicted_px: torch.Tensor, target_px: torch.Tensor, box_side: torch.Tensor) -> dict:
    """The reference's BBC score: the fraction of keypoints within 6 pixels once both are halved
    (0.5·(p − 1) + 1), and the mean pixel error as a fraction of the box side."""
    error = (predicted_px.double() - target_px.double()).norm(dim=-1)  # (N, J)
    halved = (0.5 * (predicted_px.double() - 1) - 0.5 * (target_px.double() - 1)).norm(dim=-1)
    return {"keypoint_accuracy_6px": float((halved <= BBC_RADIUS).double().mean()),
            "keypoint_error_box": float((error / box_side.double().view(-1, 1)).mean()),
            "num_test_frames": len(predicted_px)}


def landmark_regression(landmark_model, data, keypoints_file) -> dict:
    """The regression protocol on the annotated frames of `keypoints_file` ({clip: {frame: [[x, y], ...]}} in
    original pixels; frames are centre-cropped squares, so the crop is the box)."""
    from .task_landmark_dynamics import encode_clip

    annotations = json.loads(Path(keypoints_file).read_text())
    clips = {c.name: c for c in check_clip_lengths(data, 1, "landmark regression")}
    unknown = sorted(set(annotations) - set(clips))
    if unknown:
        raise ValueError(f"--keypoints names clips that are not under --data: {unknown}; known: {sorted(clips)}")
    size = landmark_model.config.image_size
    rows = []  # (landmarks (K, 2), box-normalised keypoints (J, 2), keypoints px, box min, box side)
    for name in sorted(annotations):
        clip = clips[name]
        side = min(clip.height, clip.width)
        box_min = torch.tensor([(clip.width - side) // 2, (clip.height - side) // 2], dtype=torch.float64)
        mu, _ = encode_clip(landmark_model, read_clip(clip, size))
        for frame, points in sorted(annotations[name].items(), key=lambda item: int(item[0])):
            points = torch.tensor(points, dtype=torch.float64)
            rows.append((mu[int(frame)], (points - box_min) / side - 0.5, points, box_min, side))
    if len(rows) < 2:
        raise ValueError(f"--keypoints annotates {len(rows)} frame(s); the protocol needs at least 2 (half to fit the "
                         "regression, half to test it)")
    fit, test = rows[:len(rows) // 2], rows[len(rows) // 2:]
    weights = fit_keypoint_regression(torch.stack([r[0] for r in fit]), torch.stack([r[1] for r in fit]))
    normalised = regress_keypoints(weights, torch.stack([r[0] for r in test]))
    sides = torch.tensor([r[4] for r in test], dtype=torch.float64)
    predicted = (normalised + 0.5) * sides.view(-1, 1, 1) + torch.stack([r[3] for r in test])[:, None]
    return {**bbc_keypoint_scores(predicted, torch.stack([r[2] for r in test]), sides), "num_fit_frames": len(fit)}


# -- adlr-hf evaluate -------------------------------------------------------------------------------------------------
def _read_clips(clips, size: int) -> dict[str, torch.Tensor]:
    return {clip.name: read_clip(clip, size) for clip in clips}


def evaluate_interpolation_model_dir(model_dir, data, gaps=(3, 7), mode="linear", keypoints=None,
                                     landmark_model=None, device=None, interpolation_model=None) -> dict:
    gaps = [int(g) for g in gaps]
    if not gaps or any(g < 1 for g in gaps):
        raise ValueError(f"--gaps {gaps} must be integers >= 1 (frames between two key frames)")
    folder = resolve_landmark_folder(model_dir, landmark_model)
    clips = check_clip_lengths(data, max(gaps) + 2, f"interpolation with gap {max(gaps)}")
    if keypoints is not None and not Path(keypoints).is_file():
        raise FileNotFoundError(f"--keypoints {keypoints!r} does not exist; pass a JSON file of annotated keypoints")
    if interpolation_model is not None:
        check_baseline_folder(interpolation_model, INTERPOLATION)
    model = load_landmark_model(folder, device)
    baseline = None
    if interpolation_model is not None:
        baseline = BaselineModel.load(interpolation_model, INTERPOLATION, next(model.parameters()).device)
    frames = _read_clips(clips, model.config.image_size)
    metrics = evaluate_interpolation(model, frames, gaps, mode, baseline)
    first = next(iter(frames))
    figure = {"file": "landmarks.png", "png": landmark_figure(model, frames[first][0]),
              "caption": f"the {model.config.num_landmarks} landmarks of frame 0 of {first} (means and one-sigma "
                         "ellipses), their rendered maps, and the frame decoded from them"}
    if keypoints is not None:
        metrics["keypoints"] = landmark_regression(model, data, keypoints)
    settings = {"gaps": gaps, "interpolation": mode, "landmark_model": str(folder),
                "image_size": model.config.image_size}
    if baseline is not None:
        settings["interpolation_model"] = baseline.settings
    return {"task": INTERPOLATION_TASK, "model": str(model_folder(model_dir)), "data": str(data), "split": "test",
            "settings": settings, "metrics": metrics, "figures": [figure]}


def evaluate_prediction_model_dir(model_dir, data, horizon=10, landmark_model=None, device=None,
                                  prediction_model=None) -> dict:
    from transformers import AutoConfig, AutoModel

    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"--horizon {horizon!r} must be an integer >= 1")
    dynamics_folder = model_folder(model_dir)
    config = AutoConfig.from_pretrained(dynamics_folder)
    if config.model_type != "adlr_landmark_dynamics":
        raise ValueError(f"{str(model_dir)!r} holds a {config.model_type!r} model; landmark-prediction evaluates a "
                         "landmark dynamics model (a landmark-dynamics run's model/)")
    folder = resolve_landmark_folder(model_dir, landmark_model)
    context = config.past_frames
    if prediction_model is not None:
        context = max(context, int(check_baseline_folder(prediction_model, PREDICTION)[1].sequence_length))
    clips = check_clip_lengths(data, context + horizon, f"prediction of {horizon} frames after {context}")
    model = load_landmark_model(folder, device)
    config.check_landmark_model(model.config)
    device = next(model.parameters()).device
    dynamics = AutoModel.from_pretrained(dynamics_folder).eval().to(device)
    baseline = None if prediction_model is None else BaselineModel.load(prediction_model, PREDICTION, device)
    metrics = evaluate_prediction(dynamics, model, _read_clips(clips, model.config.image_size), horizon, baseline)
    settings = {"horizon": horizon, "past_frames": config.past_frames, "context_frames": context,
                "landmark_model": str(folder), "image_size": model.config.image_size}
    if baseline is not None:
        settings["prediction_model"] = {**baseline.settings, "sequence_length": baseline.context_frames,
                                        "flow_source": getattr(baseline.model.config, "flow_source", None)}
    return {"task": PREDICTION_TASK, "model": str(dynamics_folder), "data": str(data), "split": "test",
            "settings": settings, "metrics": metrics}


def run_interpolation_from_args(args) -> dict:
    return evaluate_interpolation_model_dir(args.model_dir, args.data, args.gaps, args.interpolation, args.keypoints,
                                            args.landmark_model,
                                            interpolation_model=getattr(args, "interpolation_model", None))


def run_prediction_from_args(args) -> dict:
    return evaluate_prediction_model_dir(args.model_dir, args.data, args.horizon, args.landmark_model,
                                         prediction_model=getattr(args, "prediction_model", None))
