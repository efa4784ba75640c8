"""The OpenImages VRD score 0.2 R@50 + 0.4 wmAP_rel + 0.4 wmAP_phr (RelDN's evaluation, arXiv 1903.02728 / 1811.09543)."""

from .openimages_vrd import OpenImagesVRD, openimages_vrd_score

__all__ = ["OpenImagesVRD", "openimages_vrd_score"]
