"""What a DeepSpeed config decides about per-rank state: ZeRO stage, precision, the dtypes of weights, gradients and
communication, the fp32 master copy, the optimizer's state per parameter and ZeRO's gradient buckets.

The defaults are DeepSpeed 0.19.8's (runtime/engine.py, runtime/zero/config.py, runtime/zero/stage_1_and_2.py):
gradients accumulate in the model's dtype unless `data_types.grad_accum_dtype` says otherwise; collectives run in
the model's dtype unless `communication_data_type` says otherwise; ZeRO 1-2 keep an fp32 master copy of their
partition also for an fp32 model; a 16-bit model without ZeRO gets DeepSpeed's mixed-precision optimizer wrapper,
which keeps fp32 master weights; ZeRO 1-2 bucket gradients in `reduce_bucket_size` elements (5e8), double-buffered
with `overlap_comm`; gradient reduction is a multi-rank bucketed all-reduce unless
`use_multi_rank_bucket_allreduce` is false.
"""

from __future__ import annotations

from dataclasses import dataclass

_DTYPE_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2, "half": 2}
# Optimizer state bytes per parameter held by the optimizer itself (fp32 moments), by DeepSpeed optimizer type.
_OPTIMIZER_STATE_BYTES = {"adam": 8, "adamw": 8, "fusedadam": 8, "lamb": 8, "fusedlamb": 8}


def _enabled(config: dict, key: str) -> bool:
    section = config.get(key) or {}
    return isinstance(section, dict) and section.get("enabled") is True


def _dtype_bytes(value, where: str) -> int:
    name = str(value).lower().replace("torch.", "")
    if name not in _DTYPE_BYTES:
        raise ValueError(f"DeepSpeed config {where}={value!r} is not a dtype adlr-hf plan knows; use fp32, bf16 or "
                         "fp16.")
    return _DTYPE_BYTES[name]


@dataclass(frozen=True)
class TrainingSetup:
    zero_stage: int
    precision: str            # "fp32", "bf16" or "fp16": the weights' dtype
    param_bytes: int          # per parameter, the weights
    grad_bytes: int           # per gradient element
    comm_bytes: int           # per element of a data-parallel collective
    master_copy: bool         # fp32 master weights kept beside the weights
    optimizer: str
    optimizer_state_bytes: int
    bucket_elements: int      # ZeRO 1-2 gradient bucket (contiguous_gradients)
    bucket_buffers: int       # 0, 1, or 2 with overlap_comm
    multi_rank_allreduce: bool

    @property
    def activation_bytes(self) -> int:
        """Bytes per activation element: the compute dtype (the weights' dtype)."""
        return self.param_bytes

    @classmethod
    def from_deepspeed_config(cls, config: dict) -> "TrainingSetup":
        zero = config.get("zero_optimization") or {}
        stage = int(zero.get("stage", 0))
        if stage not in (0, 1, 2, 3):
            raise ValueError(f"DeepSpeed config zero_optimization.stage={stage} is not a ZeRO stage; use 0, 1, 2 or 3.")
        for key in ("offload_optimizer", "offload_param"):
            device = (zero.get(key) or {}).get("device", "none")
            if device not in (None, "none"):
                raise ValueError(f"DeepSpeed config zero_optimization.{key}.device={device!r}: adlr-hf plan models "
                                 "GPU-resident state only; remove the offload section.")
        if _enabled(config, "bf16") and _enabled(config, "fp16"):
            raise ValueError("DeepSpeed config enables both bf16 and fp16; enable one of them.")
        precision = "bf16" if _enabled(config, "bf16") else "fp16" if _enabled(config, "fp16") else "fp32"
        param_bytes = _DTYPE_BYTES[precision]
        grad_accum_dtype = (config.get("data_types") or {}).get("grad_accum_dtype")
        grad_bytes = param_bytes if grad_accum_dtype is None else _dtype_bytes(grad_accum_dtype,
                                                                              "data_types.grad_accum_dtype")
        comm = config.get("communication_data_type")
        comm_bytes = param_bytes if comm is None else _dtype_bytes(comm, "communication_data_type")
        optimizer = str((config.get("optimizer") or {}).get("type", "AdamW"))
        if optimizer.lower() not in _OPTIMIZER_STATE_BYTES:
            raise ValueError(f"DeepSpeed config optimizer.type={optimizer!r}: adlr-hf plan models Adam-type "
                             f"optimizers ({', '.join(sorted(_OPTIMIZER_STATE_BYTES))}); use one of them or drop "
                             "the section (training then uses torch AdamW).")
        contiguous = bool(zero.get("contiguous_gradients", True))
        overlap = zero.get("overlap_comm")
        overlap = stage == 3 if overlap is None else bool(overlap)
        buffers = (2 if overlap else 1) if stage in (1, 2) and contiguous else 0
        return cls(zero_stage=stage, precision=precision, param_bytes=param_bytes, grad_bytes=grad_bytes,
                   comm_bytes=comm_bytes, master_copy=stage >= 1 or precision != "fp32", optimizer=optimizer,
                   optimizer_state_bytes=_OPTIMIZER_STATE_BYTES[optimizer.lower()],
                   bucket_elements=int(float(zero.get("reduce_bucket_size", 5e8))), bucket_buffers=buffers,
                   multi_rank_allreduce=bool(zero.get("use_multi_rank_bucket_allreduce", True)))
