"""Memory that training state costs each rank under DeepSpeed ZeRO-0 / ZeRO-1 / ZeRO-2, data-parallel over
`--dp` gloo ranks on CPU (default 2; TP=1, torch.optim.AdamW, `--precision bf16` by default or fp32).

bf16 is the mixed-precision regime ZeRO was designed for: 16-bit weights and gradients, fp32 master weights and
Adam state. Per parameter P: ZeRO-0 holds 2P weights + 2P gradients + 4P master + 8P Adam = 16P; ZeRO-2 at DP=2
keeps the weights and shards the rest: 2P + 1P + 2P + 4P = 9P, i.e. 0.5625.

    ratio = tracked bytes per rank (ZeRO-2) / tracked bytes per rank (ZeRO-0)        target: <= 0.6

Measured, default model (6 layers / 768 / 12 heads / vocab 50257, 81.2M parameters), DP=2, bf16
(`python scripts/bench/zero_memory.py`): tracked MiB per rank ZeRO-0 1239.4, ZeRO-1 698.0, ZeRO-2 698.0 ->
ratio 0.563; peak RSS over steps 2-3, ZeRO-2 / ZeRO-0 = 879.3 / 1580.2 MiB = 0.556.

The fp32 run below (`--precision fp32`) cannot reach 0.6 at DP=2, for the reason given after its table.

Measured with `--precision fp32` (default model, 81.2M parameters = 310 MiB fp32; per rank, max of the two ranks):

    stage   tracked MiB  vs ZeRO-0   RSS Δ steps 2-3  vs ZeRO-0   RSS Δ init + step 1  vs ZeRO-0
    ZeRO-0       1239.4      1.000            1298.1      1.000                1272.3      1.000
    ZeRO-1        931.2      0.751            1171.4      0.902                1022.4      0.804
    ZeRO-2        931.2      0.751            1234.3      0.951                1022.9      0.804
    ZeRO-3        851.5      0.687            1271.3      0.978                1105.8      0.874   (--stages 0 2 3)

Why the target (<= 0.6) is out of reach for fp32 at DP=2 (P = parameters, 4 bytes each):
* ZeRO-0 holds 16P: weights 4P + gradients 4P + Adam exp_avg/exp_avg_sq 8P.
* ZeRO-2 at DP=2 holds 12P: weights 4P (re-laid into one flat buffer) + this rank's gradient partition 2P + Adam
  state for the partition 4P + an fp32 *master copy* of the partition 2P. DeepSpeed clones the master partition
  even when the model itself is fp32 (stage_1_and_2.py: `weights_partition = ...detach().clone().to(fp32)`), so
  12/16 = 0.75 exactly, which is what the tracked column shows. Even without that copy, ZeRO-2 at DP=2 would be
  (4 + (4 + 8)/2)/16 = 0.625: a ratio <= 0.6 needs DP >= 3, ZeRO-3, or 16-bit weights with fp32 master state.
* ZeRO-1 equals ZeRO-2 here: this DeepSpeed (0.19.8) also reduces stage-1 gradients into partitions during the
  backward, so the full gradients do not outlive it.
* RSS is further from the ideal because of transients: each gradient is produced full-size by autograd before its
  partition is copied out, and the tied embedding / LM-head gradient (38.6M parameters, 147 MiB) is alive from the
  LM head's backward to the embedding's, i.e. through the whole backward. ZeRO-3 tracks 10P + its 2e7-element
  (76 MiB) bucket and adds parameter gather buffers on top in RSS.

Quick run: `--layers 2 --hidden 256 --heads 4`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

CATEGORIES = ("parameters", "gradients", "optimizer state", "ZeRO buffers")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _tensors_in(obj, depth: int, seen: set):
    """Tensors reachable from obj through lists, tuples, dicts and the attributes of DeepSpeed / torch.optim
    objects, up to `depth` levels."""
    if isinstance(obj, torch.Tensor):
        yield obj
        if obj.grad is not None:
            yield obj.grad
        return
    if depth == 0 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors_in(value, depth - 1, seen)
    elif isinstance(obj, (list, tuple, set)):
        for value in obj:
            yield from _tensors_in(value, depth - 1, seen)
    elif type(obj).__module__.startswith(("deepspeed", "torch.optim")) and hasattr(obj, "__dict__"):
        for name, value in vars(obj).items():
            if name not in ("module", "model", "_modules", "mpu", "timers"):
                yield from _tensors_in(value, depth - 1, seen)


class _StorageLedger:
    """Bytes per category, each distinct storage counted once (in the first category that reaches it)."""

    def __init__(self):
        self.owner: dict[int, str] = {}
        self.bytes = dict.fromkeys(CATEGORIES, 0)

    def add(self, category: str, tensors) -> None:
        for tensor in tensors:
            if tensor is None or tensor.device.type != "cpu":
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key == 0 or key in self.owner:
                continue
            self.owner[key] = category
            self.bytes[category] += storage.nbytes()


def _tracked_bytes(engine) -> dict[str, int]:
    ledger = _StorageLedger()
    params = list(engine.module.parameters())
    # ZeRO-3 leaves each parameter empty and keeps this rank's partition in `ds_tensor`.
    ledger.add("parameters", [p.detach() for p in params] + [getattr(p, "ds_tensor", None) for p in params])
    zero = engine.optimizer
    inner = getattr(zero, "optimizer", zero)
    state = [t for s in inner.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    ledger.add("optimizer state", state)
    grads = [p.grad for p in params]
    for name in ("averaged_gradients", "averaged_gradients_on_cpu", "grad_partitions_flat_buffer"):
        grads += list(_tensors_in(getattr(zero, name, None), 4, set()))
    for name in ("single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"):  # fp32 masters' .grad
        grads += [t.grad for t in getattr(zero, name, None) or [] if isinstance(t, torch.Tensor)]
    ledger.add("gradients", grads)
    ledger.add("ZeRO buffers", _tensors_in(zero, 5, set()))
    return ledger.bytes


def _rank(rank: int, stage: int, port: int, args: dict, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(args["dp"]),
                      LOCAL_WORLD_SIZE=str(args["dp"]),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        import deepspeed

        import adlr_hf  # noqa: F401
        from adlr_hf.models.megatron_gpt.configuration_megatron_gpt import MegatronGPTConfig
        from adlr_hf.models.megatron_gpt.modeling_megatron_gpt import MegatronGPTForCausalLM

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # plain gloo, no JIT build
        deepspeed.init_distributed(dist_backend="gloo")
        config = MegatronGPTConfig(vocab_size=args["vocab"], max_position_embeddings=args["seq"],
                                   hidden_size=args["hidden"], num_layers=args["layers"],
                                   num_attention_heads=args["heads"], hidden_dropout=0.0, attention_dropout=0.0,
                                   embedding_dropout=0.0)
        torch.manual_seed(args["seed"])
        model = MegatronGPTForCausalLM(config).train()
        n_params = sum(p.numel() for p in model.parameters())
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ds_config = {"train_micro_batch_size_per_gpu": args["batch"], "gradient_accumulation_steps": 1,
                     "steps_per_print": 10**9, "bf16": {"enabled": args["precision"] == "bf16"},
                     # ZeRO keeps its gradient partitions in this dtype (default fp32 even for bf16 training).
                     "data_types": {"grad_accum_dtype": args["precision"]},
                     "zero_optimization": {"stage": stage, "reduce_bucket_size": args["bucket"],
                                           "allgather_bucket_size": args["bucket"]}}
        ids = torch.randint(0, args["vocab"], (args["batch"], args["seq"]),
                            generator=torch.Generator().manual_seed(args["seed"] + rank))

        rss_before = _proc_status_kib("VmRSS")
        peak_reset = _reset_peak_rss()
        engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), optimizer=optimizer,
                                          config=ds_config)
        losses = []
        for step in range(args["steps"]):
            loss = engine(input_ids=ids, labels=ids, use_cache=False).loss
            engine.backward(loss)
            if step == args["steps"] - 1:
                tracked = _tracked_bytes(engine)
            engine.step()
            losses.append(float(loss.detach()))
            if step == 0:  # the one-time cost of initialize (flattening, copies) ends with the first step
                rss_peak_first = _proc_status_kib("VmHWM")
                peak_reset = _reset_peak_rss() and peak_reset
        rss_peak_steady = _proc_status_kib("VmHWM")
        rss_after = _proc_status_kib("VmRSS")
        results.put(("ok", stage, rank, {
            "tracked": tracked, "rss_before_kib": rss_before, "rss_peak_first_kib": rss_peak_first,
            "rss_peak_kib": rss_peak_steady, "rss_after_kib": rss_after, "peak_reset": peak_reset,
            "losses": losses, "params": n_params, "optimizer": type(engine.optimizer).__name__,
        }))
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    except BaseException as err:
        results.put(("error", stage, rank, f"{type(err).__name__}: {err}"))
        raise


def run_stage(stage: int, args: dict) -> list[dict]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, stage, port, args, results), daemon=True)
             for r in range(args["dp"])]
    for proc in procs:
        proc.start()
    got = {}
    deadline = time.monotonic() + 1800
    while len(got) < args["dp"]:
        status, _, rank, payload = results.get(timeout=max(1.0, deadline - time.monotonic()))
        if status == "error":
            for proc in procs:
                proc.kill()
            raise RuntimeError(f"ZeRO-{stage} rank {rank} failed: {payload}")
        got[rank] = payload
    for proc in procs:
        proc.join(timeout=120)
    return [got[r] for r in range(args["dp"])]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--bucket", type=float, default=2e7,
                        help="ZeRO reduce/allgather bucket size in elements (DeepSpeed's default: 5e8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dp", type=int, default=2, help="data-parallel ranks (memory only: they may share cores)")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                        help="bf16: 16-bit weights and gradients with fp32 master weights and Adam state (the "
                             "mixed-precision regime ZeRO partitions); fp32: everything in fp32")
    args = parser.parse_args(argv)
    if 0 not in args.stages or 2 not in args.stages:
        parser.error("--stages must include 0 and 2 (the ratio compares them)")
    shared = {k: getattr(args, k) for k in ("layers", "hidden", "heads", "vocab", "seq", "batch", "steps", "seed",
                                            "precision", "dp")}
    shared["bucket"] = int(args.bucket)

    # Large blocks straight from mmap and back on free, so RSS follows live tensors instead of glibc's heap slack
    # (inherited by the spawned ranks; the same for every stage).
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    per_stage = {stage: run_stage(stage, shared) for stage in args.stages}
    mib = 1024 * 1024
    n_params = per_stage[0][0]["params"]
    print(f"model: layers={args.layers} hidden={args.hidden} heads={args.heads} vocab={args.vocab} seq={args.seq} "
          f"micro-batch={args.batch}, {n_params / 1e6:.1f}M parameters ({n_params * 4 / mib:.0f} MiB fp32); DP={args.dp} "
          f"gloo ranks, TP=1, {args.precision}, torch AdamW, {args.steps} steps, buckets {int(args.bucket):.2e} elements")
    print("tracked bytes per rank (MiB; after the last backward, before its step) and RSS deltas (MiB):")
    header = f"{'stage':<8}{'rank':>5}" + "".join(f"{c:>17}" for c in CATEGORIES) + \
        f"{'tracked total':>15}{'RSS Δ init+1':>14}{'RSS Δ 2..N':>12}{'RSS Δ end':>11}  optimizer"
    print(header)
    summary = {}
    for stage, ranks in per_stage.items():
        for rank, r in enumerate(ranks):
            total = sum(r["tracked"].values())
            first = (r["rss_peak_first_kib"] - r["rss_before_kib"]) / 1024
            peak = (r["rss_peak_kib"] - r["rss_before_kib"]) / 1024
            end = (r["rss_after_kib"] - r["rss_before_kib"]) / 1024
            print(f"{'ZeRO-' + str(stage):<8}{rank:>5}" + "".join(f"{r['tracked'][c] / mib:>17.1f}" for c in CATEGORIES)
                  + f"{total / mib:>15.1f}{first:>14.1f}{peak:>12.1f}{end:>11.1f}  {r['optimizer']}")
        summary[stage] = {
            "tracked_mib": max(sum(r["tracked"].values()) for r in ranks) / mib,
            "rss_peak_delta_mib": max(r["rss_peak_kib"] - r["rss_before_kib"] for r in ranks) / 1024,
            "rss_peak_first_delta_mib": max(r["rss_peak_first_kib"] - r["rss_before_kib"] for r in ranks) / 1024,
            "losses": ranks[0]["losses"],
        }
    if not all(r["peak_reset"] for ranks in per_stage.values() for r in ranks):
        print("note: /proc/self/clear_refs was not writable; 'RSS peak Δ' is the process's lifetime peak")
    losses = {stage: s["losses"] for stage, s in summary.items()}
    gap = max(abs(a - b) for s in losses.values() for a, b in zip(s, losses[0]))
    print(f"rank-0 losses per stage agree to {gap:.1e}" + (" (ZeRO changes memory, not the maths)" if
          args.precision == "fp32" else " (bf16: stage 0's FP16_UnfusedOptimizer and ZeRO's optimizer round "
          "differently)"))
    print("per rank, max over the ranks (MiB):")
    print(f"{'stage':<8}{'tracked':>10}{'vs ZeRO-0':>11}{'RSS Δ steps 2..N':>18}{'vs ZeRO-0':>11}"
          f"{'RSS Δ init+step 1':>19}{'vs ZeRO-0':>11}")
    z0 = summary[0]
    for stage, s in summary.items():
        print(f"{'ZeRO-' + str(stage):<8}{s['tracked_mib']:>10.1f}{s['tracked_mib'] / z0['tracked_mib']:>11.3f}"
              f"{s['rss_peak_delta_mib']:>18.1f}{s['rss_peak_delta_mib'] / z0['rss_peak_delta_mib']:>11.3f}"
              f"{s['rss_peak_first_delta_mib']:>19.1f}"
              f"{s['rss_peak_first_delta_mib'] / z0['rss_peak_first_delta_mib']:>11.3f}")
    ratio = summary[2]["tracked_mib"] / summary[0]["tracked_mib"]
    result = {"bench": "zero_memory", "ratio": round(ratio, 4), "target": "<=0.6",
              "ratio_rss_peak_delta": round(summary[2]["rss_peak_delta_mib"] / summary[0]["rss_peak_delta_mib"], 4),
              "tracked_mib_per_rank": {f"zero{k}": round(v["tracked_mib"], 1) for k, v in summary.items()},
              "rss_peak_delta_mib_per_rank": {f"zero{k}": round(v["rss_peak_delta_mib"], 1)
                                              for k, v in summary.items()},
              "rss_peak_init_delta_mib_per_rank": {f"zero{k}": round(v["rss_peak_first_delta_mib"], 1)
                                                   for k, v in summary.items()},
              "precision": args.precision, "params": n_params, "bucket": int(args.bucket), "dp": args.dp, "layers": args.layers,
              "hidden": args.hidden, "vocab": args.vocab, "seq": args.seq}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
