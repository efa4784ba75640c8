"""Relationship and phrase detection Recall@K (RelDN's VG/VRD evaluation, arXiv 1903.02728)."""

from .relationship_recall import RelationshipRecall, relationship_recall

__all__ = ["RelationshipRecall", "relationship_recall"]
