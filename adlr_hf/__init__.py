"""adlr_hf: NVIDIA ADLR's 2018-2019 research models as Hugging Face models with Megatron tensor parallelism.

Importing the package registers every family of `adlr_hf.models.FAMILIES` (and the plug-ins named by
`ADLR_HF_PLUGINS` or the `adlr_hf.plugins` entry points) with transformers' Auto classes, and re-exports each family
package's public names (its `__all__`), e.g. `adlr_hf.MegatronGPTForCausalLM`.
"""

import importlib as _importlib

from .family import CardFacts, Converter, FamilySpec, Option, Paper, Variant
from .models import FAMILIES
from .parallel.hf_native import register_hf_styles
from .registry import families, get_config, list_models, load_plugins, register_family
from .tasks import register_task

__version__ = "0.1.0"

__all__ = ["FAMILIES", "CardFacts", "Converter", "FamilySpec", "Option", "Paper", "Variant", "families",
           "get_config", "list_models", "load_plugins", "register_family", "register_task"]

for _spec in FAMILIES:
    register_family(_spec)
    _package = _importlib.import_module(_spec.config_class.__module__.rpartition(".")[0])
    for _name in getattr(_package, "__all__", ()):
        if _name != "SPEC":
            globals()[_name] = getattr(_package, _name)
            __all__.append(_name)
# Our two TP styles transformers lacks, so `distributed_config=DistributedConfig(tp_plan="auto")` also works.
register_hf_styles()
load_plugins()
