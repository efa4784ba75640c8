"""Planning a training layout without running it (`adlr-hf plan`): per-rank parameters from the family's TP plan on
the meta device, ZeRO memory, activations, FLOPs, communication and the launch files. One idea per module:

| module | what it holds |
|---|---|
| `layout.py` | the TP × DP × nodes × batch layout and its checks |
| `fake_group.py` | a TP group of any size in one process (torch's fake backend) |
| `ranks.py` | each TP rank's model on the meta device, sharded by `apply_tp_plan` |
| `setup.py` | what a DeepSpeed config decides (ZeRO stage, dtypes, master copy, buckets) |
| `memory.py` | weights, gradients and optimizer state per rank under ZeRO (arXiv 1910.02054) |
| `activations.py` | activation memory per micro-batch (Korthikanti et al., arXiv 2205.05198) |
| `flops.py` | FLOPs per step (Narayanan et al., arXiv 2104.04473) |
| `collectives.py` | counting the bytes through `torch.distributed`'s collectives |
| `communication.py` | TP all-reduces (traced) and DP / ZeRO collectives per step |
| `launch.py` | deepspeed / torchrun commands, hostfile, DeepSpeed config, launch.sh |
| `report.py` | table and JSON |
| `plan.py` | `make_plan`, putting them together |
| `paper_scale.py` | the model card's "scaling" section |
| `command.py` | the `adlr-hf plan` flags |
"""

from .layout import Layout, resolve_layout
from .plan import make_plan

__all__ = ["Layout", "make_plan", "resolve_layout"]
