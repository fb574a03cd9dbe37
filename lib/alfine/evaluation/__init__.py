"""Segmentation scores, accumulated block by block: instance (VOI, Rand, splits and merges,
object matching) and semantic (per-class counts, Hausdorff), and which way each one points."""

from .instance import SIGNIFICANT_OVERLAP, Contingency, evaluate_instances
from .registry import COUNTS, HIGHER_IS_BETTER, best, better
from .semantic import ConfusionCounts, distance_to, evaluate_semantic, hausdorff, precision_recall_f1, surface

__all__ = [
    "COUNTS",
    "HIGHER_IS_BETTER",
    "SIGNIFICANT_OVERLAP",
    "ConfusionCounts",
    "Contingency",
    "best",
    "better",
    "distance_to",
    "evaluate_instances",
    "evaluate_semantic",
    "hausdorff",
    "precision_recall_f1",
    "surface",
]
