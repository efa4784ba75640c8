"""Landmark-space interpolation and prediction (Shih et al., arXiv 1909.02749) against the simple baselines, over
seeds, on the staged real face clips of ../shared/data/face-video (three talking heads, fomm-driving-mp4).

    ratio = mean over seeds of (gap-7 SSIM of landmark interpolation) / (gap-7 SSIM of frame averaging)
            (> 1: landmark-space interpolation beats frame averaging at the long gap, the paper's claim)

Per seed, in this interpreter, from the same seed:
1. the landmark model (`--landmark-variant`, landmark-video-tiny by default: K = 8, 64×64) trains by reconstruction
   for `--landmark-steps` Adam steps (lr `--lr`) on pairs of frames of one clip: pose from frame i, appearance from
   frame j with 3 <= |i − j| <= 40 (the reference's BBC temporal pairing; no colour jitter or TPS here), target frame
   i, the model's own loss (pixel L1 + SSIM, no VGG19 weights offline);
2. the dynamics LSTM (landmark-dynamics-tiny) trains for `--dynamics-steps` on the frozen landmark model's landmark
   sequences of the training frames (4 past, 4 future, teacher forcing, L2);
3. scoring on held-out frames of the same clips (frames 100–131 of each video; training uses frames 0–95):
   `evaluate_interpolation` at gap 7 (key frames every 8 frames, 7 frames between; frame averaging on the same
   frames) and `evaluate_prediction` over 1–5 steps after 4 past frames (copy-last-frame on the same frames), the
   functions `adlr-hf evaluate --task landmark-interpolation | landmark-prediction` run.

Frames are decoded with PyAV and resized to the landmark model's size. The baselines do not depend on the seed. The
budget is deliberately small (the default run takes a few minutes on 2 CPU cores): it measures the pipeline end to
end, not the paper's numbers, which need hours of GPU training on thousands of clips.

The "true landmarks" row decodes each in-between frame from its own landmarks (encoded from the real frame) with the
nearest key frame's appearance: the score a perfect landmark path would get, so the gap between it and the
interpolation row is the interpolation's share of the error, and the rest is the decoder's.

Measured with the defaults (landmark-video-tiny, 60 landmark steps of batch 4 at 64×64, 300 dynamics steps of batch
16, lr 1e-3, seeds 0 1 2; 313 s wall on 2 shared CPU cores), held-out frames, mean ± std over the seeds:

    gap-7 interpolation                     PSNR (dB)          SSIM
    landmark space (linear)                 15.17 ± 0.44       0.327 ± 0.016
    true landmarks (decoder ceiling)        15.20 ± 0.42       0.329 ± 0.016
    frame averaging                         32.95              0.918

    prediction PSNR (dB)     step 1   step 2   step 3   step 4   step 5
    landmark dynamics        15.20    15.24    15.25    15.27    15.28
    copy last frame          37.08    30.38    27.69    26.16    25.23

    ratio (SSIM landmark / frame averaging) 0.357

The goal (landmark interpolation beats frame averaging in SSIM at gap 7) is NOT met at this budget: the landmark
model's decoder reconstructs a frame from its own true landmarks at only ~15 dB after 60 steps, so both landmark
rows sit at the decoder's ceiling (interpolation costs 0.03 dB beside it), and talking heads at 64×64 move so little
over 8 frames that averaging scores 33 dB. The paper's regime needs a landmark model trained to convergence (hours of
GPU on thousands of clips).

A longer budget, `--landmark-steps 800 --dynamics-steps 600` (seeds 0 and 1; 311 s and 948 s on the shared cores,
the third seed did not finish in the time available), gap 7, held-out frames:

    seed    landmark interp. PSNR / SSIM    true landmarks PSNR / SSIM    frame averaging PSNR / SSIM
    0       22.28 / 0.624                   22.40 / 0.631                 32.95 / 0.918
    1       22.24 / 0.632                   22.37 / 0.641                 32.95 / 0.918

    prediction PSNR (dB), seed 0 / 1     step 1          step 2          step 3          step 4          step 5
    landmark dynamics                    22.25 / 22.30   22.30 / 22.28   22.21 / 22.09   22.01 / 21.87   21.81 / 21.66
    copy last frame                      37.08           30.38           27.69           26.16           25.23

Reconstruction improves by 7 dB with 13× the steps and interpolation stays within 0.13 dB of the true-landmark
ceiling; the decoder, not the landmark path, is what loses to averaging (SSIM ratio ~0.68). JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VIDEOS = SHARED / "face-video" / "fomm-driving-mp4"
CLIPS = ("04", "08", "10")
TRAIN_FRAMES, EVAL_FRAMES = range(0, 96), range(100, 132)


def staged_clips(size: int) -> tuple[dict, dict]:
    """({clip: training frames (T, 3, s, s)}, {clip: held-out frames}) in [-1, 1], from the staged videos."""
    import av
    import numpy as np

    from adlr_hf.models.landmark_video.task_landmark_dynamics import square_frames

    train, held_out = {}, {}
    for clip in CLIPS:
        path = VIDEOS / f"{clip}.mp4"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the bench reads ../shared/data/face-video (see its SOURCE.md)")
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for i, f in zip(range(EVAL_FRAMES[-1] + 1),
                                                                   container.decode(video=0))]
        video = torch.from_numpy(np.stack(frames))
        train[clip] = square_frames(video[list(TRAIN_FRAMES)], size)
        held_out[clip] = square_frames(video[list(EVAL_FRAMES)], size)
    return train, held_out


def train_landmark_model(variant: str, clips: dict, steps: int, batch: int, lr: float, seed: int):
    from transformers import AutoModel

    from adlr_hf import get_config

    torch.manual_seed(seed)
    model = AutoModel.from_config(get_config(variant)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    names = list(clips)
    losses = []
    for _ in range(steps):
        pose, appearance = [], []
        for _ in range(batch):
            frames = clips[names[int(torch.randint(len(names), (1,), generator=generator))]]
            i = int(torch.randint(len(frames), (1,), generator=generator))
            others = [j for j in range(len(frames)) if 3 <= abs(i - j) <= 40]
            j = others[int(torch.randint(len(others), (1,), generator=generator))]
            pose.append(frames[i])
            appearance.append(frames[j])
        pose, appearance = torch.stack(pose), torch.stack(appearance)
        loss = model(pixel_values_videos=torch.stack([pose, appearance], 1), labels=pose).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return model.eval().requires_grad_(False), losses


def train_dynamics_model(landmark_model, clips: dict, steps: int, batch: int, lr: float, seed: int):
    from adlr_hf import LandmarkDynamicsModel, get_config
    from adlr_hf.models.landmark_video.task_landmark_dynamics import encode_clip

    torch.manual_seed(seed)
    config = get_config("landmark-dynamics-tiny", landmark_config=landmark_model.config.to_dict(),
                        num_landmarks=None)
    model = LandmarkDynamicsModel(config).train()
    span = config.past_frames + config.future_frames
    sequences = []
    for frames in clips.values():
        mu, cov = encode_clip(landmark_model, frames)
        sequences += [(mu[s:s + span], cov[s:s + span]) for s in range(len(frames) - span + 1)]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        rows = torch.randint(len(sequences), (batch,), generator=generator).tolist()
        mu = torch.stack([sequences[r][0] for r in rows])
        cov = torch.stack([sequences[r][1] for r in rows])
        past = config.past_frames
        loss = model(mu[:, :past], cov[:, :past], labels=mu[:, past:], label_covariances=cov[:, past:]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return model.eval(), losses


@torch.no_grad()
def decoder_ceiling(landmark_model, clips: dict, gap: int) -> dict:
    """PSNR / SSIM of the gap's in-between frames decoded from their own (true) landmarks with the nearest key
    frame's appearance: what a perfect landmark path would give, i.e. the decoder's share of the error."""
    from adlr_hf.models.landmark_video.evaluation_landmark_video import interpolation_plan, to_pixels
    from adlr_hf.models.landmark_video.interpolation_landmarks import nearest_keys
    from adlr_hf.tasks.video_data import score_frames

    psnr, ssim = [], []
    for frames in clips.values():
        keys, queries = interpolation_plan(len(frames), gap)
        pose = landmark_model.encode_pose(frames)
        nearest = nearest_keys(keys, queries)
        for q, key in zip(queries, (keys[i] for i in nearest.tolist())):
            appearance = landmark_model.encode_appearance(frames[key:key + 1], pose.mu[key:key + 1],
                                                          pose.covariance[key:key + 1], pose.heatmaps[key:key + 1])
            decoded = landmark_model.decode(appearance, pose.mu[q:q + 1], pose.covariance[q:q + 1])
            values = score_frames(to_pixels(decoded), to_pixels(frames[q:q + 1]))
            psnr.append(values["psnr"])
            ssim.append(values["ssim"])
    return {"psnr": float(torch.cat(psnr).mean()), "ssim": float(torch.cat(ssim).mean())}


def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def main(argv=None) -> dict:
    from adlr_hf.models.landmark_video.evaluation_landmark_video import evaluate_interpolation, evaluate_prediction

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--landmark-variant", default="landmark-video-tiny")
    parser.add_argument("--landmark-steps", type=int, default=60)
    parser.add_argument("--dynamics-steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import adlr_hf  # noqa: F401 - registers the families

    start = time.perf_counter()
    size = adlr_hf.get_config(args.landmark_variant).image_size
    train, held_out = staged_clips(size)
    runs = []
    for seed in args.seeds:
        began = time.perf_counter()
        landmarks, landmark_losses = train_landmark_model(args.landmark_variant, train, args.landmark_steps,
                                                          args.batch, args.lr, seed)
        dynamics, dynamics_losses = train_dynamics_model(landmarks, train, args.dynamics_steps, 16, args.lr, seed)
        interpolation = evaluate_interpolation(landmarks, held_out, gaps=(7,))
        prediction = evaluate_prediction(dynamics, landmarks, held_out, horizon=5)
        ceiling = decoder_ceiling(landmarks, held_out, gap=7)
        run = {"seed": seed, "seconds": round(time.perf_counter() - began, 1),
               "landmark_loss": [round(landmark_losses[0], 4), round(statistics.fmean(landmark_losses[-10:]), 4)],
               "dynamics_loss": [round(dynamics_losses[0], 6), round(statistics.fmean(dynamics_losses[-10:]), 6)],
               "gap7": {**interpolation["per_gap"]["gap7"], "true_landmarks_psnr": ceiling["psnr"],
                        "true_landmarks_ssim": ceiling["ssim"]},
               "prediction": {step: {k: v[k] for k in ("psnr", "ssim", "copy_last_psnr", "copy_last_ssim")}
                              for step, v in prediction["per_step"].items()}}
        runs.append(run)
        print(json.dumps(run), flush=True)
    gap7 = {key: spread([r["gap7"][key] for r in runs])
            for key in ("psnr", "ssim", "frame_average_psnr", "frame_average_ssim", "true_landmarks_psnr",
                        "true_landmarks_ssim")}
    steps = list(runs[0]["prediction"])
    prediction = {step: {key: spread([r["prediction"][step][key] for r in runs])["mean"]
                         for key in ("psnr", "copy_last_psnr")} for step in steps}
    print("\ngap-7 interpolation (held-out frames), mean ± std over seeds", args.seeds)
    for key in gap7:
        print(f"  {key:22s} {gap7[key]['mean']:.4f} ± {gap7[key]['std']:.4f}")
    print("prediction PSNR (dB) per step: landmark dynamics / copy last frame")
    for step in steps:
        print(f"  {step}: {prediction[step]['psnr']:.3f} / {prediction[step]['copy_last_psnr']:.3f}")
    result = {"bench": "landmark_video",
              "ratio": gap7["ssim"]["mean"] / gap7["frame_average_ssim"]["mean"],
              "ratio_means": "gap-7 SSIM of landmark-space interpolation / SSIM of frame averaging (> 1: landmarks "
                             "win)",
              "gap7": gap7, "prediction_psnr": prediction, "seeds": args.seeds,
              "landmark_steps": args.landmark_steps, "dynamics_steps": args.dynamics_steps, "batch": args.batch,
              "landmark_variant": args.landmark_variant, "seconds": round(time.perf_counter() - start, 1),
              "runs": runs}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
