"""A model family and a task defined outside adlr_hf, registered through its public API only. Importing this
module registers both; `ADLR_HF_PLUGINS=toy_family` makes every rank of a launcher import it."""

import adlr_hf
from adlr_hf import CardFacts, FamilySpec, Paper, Variant

from .configuration_toy import ToyConfig
from .modeling_toy import ToyRegressor
from .task_toy import ToyRegressionTask

SPEC = FamilySpec(
    name="toy",
    config_class=ToyConfig,
    models={"AutoModel": ToyRegressor},
    default_task="toy-regression",
    variants=(Variant("toy-tiny", {"num_features": 4, "hidden_size": 16}, "a plug-in family for tests"),),
    card=CardFacts(title="Toy regressor", paper=Paper("A toy paper", ("0000.00000",), "https://github.com/example/toy"),
                   description="a two-layer MLP regressor"),
    unsupported={"tensor_parallel": "a toy model without a TP plan"},
)

adlr_hf.register_task(ToyRegressionTask())
adlr_hf.register_family(SPEC)
