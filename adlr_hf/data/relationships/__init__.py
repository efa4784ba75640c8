"""Relationship-detection data: VRD, Visual Genome (json, or the VG-150 h5 release) and OpenImages VRD loaders
producing one record layout (`records.py`), and the torch dataset / collator the relationship-detection task trains on (`dataset.py`)."""

from .dataset import RelationshipDataset, relationship_collate, relationship_transform
from .openimages import load_openimages
from .records import RelationshipData, record_problem
from .vg_sgg_h5 import load_vg_sgg_h5
from .visual_genome import load_visual_genome
from .vrd import load_vrd

LOADERS = {"vrd": load_vrd, "vg": load_visual_genome, "oi": load_openimages}

__all__ = ["LOADERS", "RelationshipData", "RelationshipDataset", "load_openimages", "load_vg_sgg_h5",
           "load_visual_genome", "load_vrd", "record_problem", "relationship_collate", "relationship_transform"]
