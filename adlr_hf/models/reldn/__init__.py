"""Relationship detection (scene graphs): the interpretable late-fusion model of arXiv 1811.09543 and RelDN's
graphical contrastive losses, arXiv 1903.02728 (reference NVIDIA/ContrastiveLosses4VRD)."""

from ...family import CardFacts, Converter, FamilySpec, Option, Paper, Variant
from .boxes_reldn import spatial_features
from .configuration_reldn import MODES, MODULES, ReldnConfig
from .frequency_reldn import frequency_counts, frequency_table, overlapping_class_pairs
from .modeling_reldn import (
    RelationshipDetectionOutput,
    ReldnForRelationshipDetection,
    ReldnHead,
    ReldnPreTrainedModel,
    ordered_pairs,
)
from .task_relationship_detection import RelationshipDetectionTask

_TINY = dict(num_object_classes=8, num_predicates=5, detector_backbone="tiny", detector_channels=8, feature_dim=32,
             detector_min_size=64, detector_max_size=96)
_RELDN = dict(use_contrastive_losses=True)  # RelDN: every module, a trainable frequency bias, the three losses
_LATE_FUSION = dict(use_subject_object=False, frequency_bias_trainable=False)  # 1811.09543's three modules
_NO_VISUAL = dict(use_visual=False, use_subject_object=False)
_DATASETS = {"vrd": dict(num_object_classes=100, num_predicates=70), "vg": dict(num_object_classes=150,
             num_predicates=50), "oi": dict(num_object_classes=57, num_predicates=9)}


PIPELINE_TASK = "relationship-detection"


def _register_pipeline() -> None:
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    from .pipeline_reldn import RelationshipDetectionPipeline

    if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(PIPELINE_TASK, pipeline_class=RelationshipDetectionPipeline,
                                            pt_model=AutoModel, type="image")


def _variants() -> tuple[Variant, ...]:
    out = [
        Variant("reldn-tiny", dict(_TINY, **_NO_VISUAL, spatial_dim=128),
                "for tests and demos: spatial + semantic modules only (PredCls without images)"),
        Variant("reldn-tiny-visual", dict(_TINY, **_RELDN), "for tests and demos: every module on a tiny detector"),
    ]
    for name, sizes in _DATASETS.items():
        out.append(Variant(f"reldn-{name}", dict(sizes, **_RELDN),
                           "RelDN: Faster R-CNN ResNet-50-FPN (frozen), visual + S/O + spatial + trainable "
                           "frequency bias, CE + graphical contrastive losses"))
    vrd = _DATASETS["vrd"]
    out += [
        Variant("reldn-vrd-late-fusion", dict(vrd, **_LATE_FUSION),
                "arXiv 1811.09543: visual + spatial + fixed frequency table, logits added, CE only"),
        Variant("reldn-vrd-predcls-novisual", dict(vrd, **_NO_VISUAL),
                "PredCls without images: spatial + trainable frequency bias"),
        Variant("reldn-vrd-language-bias", dict(vrd, **_NO_VISUAL, use_spatial=False, frequency_bias_trainable=False),
                "the language-bias baseline: the fixed frequency table alone"),
    ]
    return tuple(out)


SPEC = FamilySpec(
    name="reldn",
    config_class=ReldnConfig,
    models={"AutoModel": ReldnForRelationshipDetection},
    default_task="relationship-detection",
    tasks=(RelationshipDetectionTask(),),  # only this family trains it
    variants=_variants(),
    register=_register_pipeline,
    converters=(Converter("reldn", "adlr_hf.models.reldn.convert_reldn:convert_reldn",
                          "a NVIDIA/ContrastiveLosses4VRD relationship checkpoint (the RelDN head, S/O heads and the "
                          "predicate branch's box head; the Detectron detector is not converted)",
                          (Option("--variant", dict(default=None, help="reldn: the variant whose detector the "
                                                    "converted head sits on (default: by the number of classes)")),
                           # default None, not False: the CLI refuses an option of another kind when it is set
                           Option("--drop-visual", dict(action="store_true", default=None,
                                                        help="reldn: convert the spatial and semantic modules only "
                                                             "(VGG16 checkpoints)")),
                           Option("--detector", dict(default=None, help="reldn: a torchvision Faster R-CNN state "
                                                     "dict for the entity detector")))),),
    card=CardFacts(
        title="RelDN / interpretable late-fusion relationship detector",
        paper=Paper("Graphical Contrastive Losses for Scene Graph Parsing; An Interpretable Model for Scene Graph "
                    "Generation", ("1903.02728", "1811.09543"), "https://github.com/NVIDIA/ContrastiveLosses4VRD"),
        description="a visual relationship detector: an entity detector (torchvision Faster R-CNN, frozen) gives "
                    "boxes, classes and box features; for every ordered pair of boxes a visual module (subject, "
                    "union and object features), subject and object heads, a spatial module (a 28-d box-pair "
                    "feature) and a semantic module (log P(predicate | subject class, object class) from the "
                    "training triplets) each give predicate logits, and the prediction is their sum, so every "
                    "predicate score splits into the modules' contributions; RelDN adds three graphical "
                    "contrastive losses to the cross entropy",
        intended_use="Scene-graph and visual-relationship research (PredCls, SGCls, SGDet on VRD, Visual Genome, "
                     "OpenImages VRD); explaining which cue (appearance, geometry, dataset prior) chose a predicate.",
        tags=("visual-relationship-detection", "scene-graph", "faster-rcnn", "interpretability"),
        limitations=("The semantic module is a dataset prior: it predicts frequent predicates for a class pair "
                     "whatever the image shows.",
                     "SGCls / SGDet quality depends on the entity detector, which this model does not train.")),
    unsupported={"output_attentions": "the relationship head is MLPs on box features; it has no attention",
                 "gradient_checkpointing": "the head is a few small MLPs; recomputing them saves no memory",
                 "resize_token_embeddings": "a relationship detector has no token embeddings"},
)

__all__ = ["MODES", "MODULES", "SPEC", "RelationshipDetectionOutput", "ReldnConfig", "ReldnForRelationshipDetection",
           "ReldnHead", "ReldnPreTrainedModel", "frequency_counts", "frequency_table", "ordered_pairs",
           "overlapping_class_pairs", "spatial_features"]
