"""Post-processing: pure functions from a network's predictions to segmentations.

Predictions are channel-first ``[C, *spatial]`` (2 or 3 spatial axes). Instance methods return
uint64 labels of the spatial shape (0 = background, objects 1..n); semantic methods return
uint8/uint16 class or mask arrays. The functions know nothing about blocks or files.

Methods by name (see :mod:`.registry`): ``threshold``, ``argmax`` (:mod:`.semantic`);
``connected_components``, ``watershed`` (:mod:`.instance`); ``mutex_watershed`` (:mod:`.mutex`);
``agglomerate`` (:mod:`.agglomeration`). A user's own function is loaded with
:func:`.user.load_function`.
"""

from .agglomeration import agglomerate
from .instance import connected_components, watershed
from .labels import remove_small_objects
from .mutex import mutex_watershed
from .registry import METHODS, Method, grid, method, run
from .semantic import argmax, threshold
from .user import load_function

__all__ = [
    "METHODS",
    "Method",
    "agglomerate",
    "argmax",
    "connected_components",
    "grid",
    "load_function",
    "method",
    "mutex_watershed",
    "remove_small_objects",
    "run",
    "threshold",
    "watershed",
]
