"""The post-processing methods by name, and everything a method decides: its parameters (names, defaults,
the grid validation sweeps), the context a block needs around it, how objects are joined across block faces,
and the dtype it writes.

Names are used as they are in configs and on command lines. Every method takes a prediction
(float ``[C, *spatial]``; affinities for the affinity methods, which also take ``offsets``) and
keyword parameters, and returns uint64 instance labels or a class array.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError
from .agglomeration import agglomerate
from .instance import connected_components, watershed
from .mutex import mutex_watershed
from .semantic import argmax, threshold

_STEPS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
# The affinity methods' tidying (see agglomeration.tidy): fragments below 20 or 100 voxels merged away; voxels
# at 0 filled along edges of at least 0.25 (low-affinity voxels stay background) or 0 (nothing is background).
# Listed first, the choice that keeps background wins ties.
TIDY_GRID = {"min_fragment": [20, 100], "fill": [0.25, 0.0]}
AGGLOMERATE_THRESHOLDS = [0.5, 0.8, 0.9]
"""Agglomeration's thresholds. Between 0.6 and 0.9 the demo's validation volume scores alike (VOI within 0.01),
but a false merge of two large cells costs a held-out volume 0.1 or more of adapted Rand error, and merges
survive up to 0.7: of two demo models (training seeds 1 and 2), each on held-out seeds 3-8, the worst adapted
Rand error was 0.167 / 0.051 at 0.7 and 0.055 / 0.035 at 0.8 (0.9 split: match F1 down to 0.70). So 0.8 and
0.9, and 0.5 for networks whose affinities are still low (early iterations). Not a law: a demo model trained
with LSDs (tasks/affinities-lsds.json) merged nothing large at 0.6-0.9 but split small cells from 0.7 up (held-out
match F1 at worst 0.83 at 0.6, 0.72 at 0.7, 0.63 at 0.8), and its validation picks 0.8 from this grid."""
CONTEXT = 16
"""Voxels per side that a block of a watershed-type method reads beyond its write region by default."""
OVERLAP_FRACTION = 0.5
"""Objects read with context are joined across a face when more than this fraction of one's face voxels are the
other's."""
REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Method:
    """A post-processing function, its default parameter grid, what it returns (``output``: ``"instances"``,
    uint64 labels, 0 = background; ``"classes"``, one class index per voxel; ``"masks"``, a uint8 mask per
    channel, or of one ``channel``) and the context it reads by default (``context`` voxels per side; methods
    that take affinity offsets at least twice the longest one). ``threads``: the function may run in several
    threads of one process at once and spends its time in numpy or C code that releases the GIL, so blocks of
    it run in threads rather than in worker processes (see :mod:`alfine.blockwise.runner`); ``holds_gil``: such a
    function whose main work holds the GIL all the same, so that runs of many blocks fork their workers instead
    and runs of few run in one thread, one block after another.
    """

    function: Callable[..., np.ndarray]
    default_grid: Mapping[str, Sequence[Any]]
    output: str
    context: int = 0
    threads: bool = False
    holds_gil: bool = False

    @property
    def instances(self) -> bool:
        """Whether the method returns instance labels (relabel joins them across blocks)."""
        return self.output == "instances"

    def default_context(self, offsets: Sequence[Sequence[int]] | None = None) -> int:
        """Voxels of context per side a block reads by default (0: none needed)."""
        if self.takes_offsets and self.context:
            reach = int(np.abs(np.asarray(offsets)).max()) if offsets else 0
            return max(self.context, 2 * reach)
        return self.context

    def join_rule(self, params: Mapping[str, Any], context: Sequence[int], ndim: int) -> dict:
        """How relabel joins this method's objects across block faces: by overlap (``fraction``) when blocks
        read ``context``, else by adjacency of nonzero voxels under the method's ``connectivity``."""
        from .arrays import check_connectivity

        if any(context):
            return {"rule": "overlap", "fraction": OVERLAP_FRACTION}
        connectivity = params.get("connectivity") if "connectivity" in self.parameters else None
        return {"rule": "adjacency", "connectivity": check_connectivity(connectivity, ndim)}

    def output_type(self, params: Mapping[str, Any], channels: int) -> tuple[np.dtype, tuple[int, ...]]:
        """The dtype and channel axes written for a prediction of ``channels`` channels."""
        if self.output == "instances":
            return np.dtype(np.uint64), ()
        if self.output == "classes":
            return np.min_scalar_type(channels - 1), ()
        return np.dtype(np.uint8), (() if params.get("channel") is not None else (channels,))

    @property
    def defaults(self) -> dict[str, Any]:
        """Each parameter a config may set and its default value (:data:`REQUIRED` where it has none)."""
        signature = inspect.signature(self.function).parameters
        return {name: signature[name].default for name in self.parameters}

    def describe(self) -> str:
        """One line for people: the parameters with their defaults."""
        shown = [name if value is REQUIRED else f"{name}={value!r}" for name, value in self.defaults.items()]
        return ", ".join(shown) or "no parameters"

    @property
    def takes_offsets(self) -> bool:
        """Whether the function needs the affinity ``offsets``."""
        return "offsets" in inspect.signature(self.function).parameters

    @property
    def parameters(self) -> list[str]:
        """The names of the parameters a config may set: all but the prediction and ``offsets``."""
        names = list(inspect.signature(self.function).parameters)[1:]
        return [name for name in names if name != "offsets"]

    @property
    def required(self) -> list[str]:
        """The parameters without a default value."""
        signature = inspect.signature(self.function).parameters
        return [name for name in self.parameters if signature[name].default is inspect.Parameter.empty]


METHODS: dict[str, Method] = {
    "threshold": Method(threshold, {"threshold": _STEPS}, output="masks", threads=True),
    "argmax": Method(argmax, {}, output="classes", threads=True),
    # cc3d holds the GIL while it labels (measured: a Python thread beside a 256³ labelling of 189 ms waited 173 ms
    # at once; 2 threads label 8 blocks of 128³ at 0.9-1.0x the pace of one, 2 processes at 1.9x): blocks in threads
    # overlap their reads, decoding, encoding and writes, not their labelling. Worker processes (a fork pool was
    # tried) were no faster at 160³ and 254³; forked ones label 512³ (64 blocks) 0.94 -> 0.78 s on 2 cores.
    "connected_components": Method(connected_components, {"threshold": _STEPS}, output="instances", threads=True,
                                   holds_gil=True),
    # The default grid suits kind="distance" on the tanh scale; boundary maps need overrides.
    # skimage's flooding runs without the GIL (checked: a Python thread keeps most of its pace beside it)
    "watershed": Method(watershed, {"seed_threshold": [0.2, 0.4, 0.6, 0.8], "mask_threshold": [-0.2, 0.0, 0.2]},
                        output="instances", context=CONTEXT, threads=True),
    "mutex_watershed": Method(mutex_watershed, {"bias": [-0.7, -0.5, -0.3], **TIDY_GRID}, output="instances",
                              context=CONTEXT),
    "agglomerate": Method(agglomerate, {"threshold": AGGLOMERATE_THRESHOLDS, **TIDY_GRID}, output="instances",
                          context=CONTEXT),
}


def method(name: str) -> Method:
    """The method called ``name``; a :class:`UserError` listing the valid names otherwise."""
    if name not in METHODS:
        raise UserError(f"unknown post-processing method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def methods_help() -> str:
    """Every method with its parameters and their defaults, for ``--help``."""
    width = max(map(len, METHODS))
    return "\n".join(f"  {name:<{width}}  {chosen.describe()}" for name, chosen in METHODS.items())


def grid(name: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination (cartesian product) of the method's parameter values, as keyword dicts.

    ``overrides`` maps parameter names to lists of values that replace or add to the default
    grid; a value that is not a list stands for a list of itself. The combinations vary the last
    parameter fastest, parameters in the order of the default grid, then of ``overrides``.
    A method without grid parameters gives one empty combination.
    """
    chosen = method(name)
    values = dict(chosen.default_grid)
    for parameter, value in (overrides or {}).items():
        _check_names(name, chosen, [parameter])
        values[parameter] = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values[parameter]:
            raise UserError(f"post-processing method {name!r}: parameter {parameter!r} has no values to try")
    return [dict(zip(values, combination, strict=True)) for combination in itertools.product(*values.values())]


def run(
    name: str, prediction: np.ndarray, params: Mapping[str, Any], offsets: Sequence[Sequence[int]] | None = None
) -> np.ndarray:
    """The method ``name`` applied to ``prediction`` with keyword ``params``.

    Raises :class:`UserError` for an unknown method or parameter name, a missing required
    parameter, or missing ``offsets`` for an affinity method; ``offsets`` is ignored by the others.
    """
    chosen = method(name)
    _check_names(name, chosen, params)
    missing = [parameter for parameter in chosen.required if parameter not in params]
    if missing:
        raise UserError(f"post-processing method {name!r} needs parameter(s) {', '.join(missing)}")
    if not chosen.takes_offsets:
        return chosen.function(prediction, **params)
    if offsets is None:
        raise UserError(f"post-processing method {name!r} needs the affinity offsets")
    return chosen.function(prediction, offsets, **params)


def _check_names(name: str, chosen: Method, parameters: Sequence[str] | Mapping[str, Any]) -> None:
    """A :class:`UserError` naming the method, the first unknown parameter and the valid ones."""
    for parameter in parameters:
        if parameter not in chosen.parameters:
            raise UserError(
                f"post-processing method {name!r} has no parameter {parameter!r}; "
                f"valid parameters: {', '.join(chosen.parameters)}"
            )
