"""The post-processing methods by name, their default parameter grids, and running one by name.

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


@dataclass(frozen=True)
class Method:
    """A post-processing function, its default parameter grid and what it returns."""

    function: Callable[..., np.ndarray]
    default_grid: Mapping[str, Sequence[Any]]
    instances: bool  # True: uint64 instance labels (0 = background); False: a class or mask array

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
    "threshold": Method(threshold, {"threshold": _STEPS}, instances=False),
    "argmax": Method(argmax, {}, instances=False),
    "connected_components": Method(connected_components, {"threshold": _STEPS}, instances=True),
    # The default grid suits kind="distance" on the tanh scale; boundary maps need overrides.
    "watershed": Method(
        watershed, {"seed_threshold": [0.2, 0.4, 0.6, 0.8], "mask_threshold": [-0.2, 0.0, 0.2]}, instances=True
    ),
    "mutex_watershed": Method(mutex_watershed, {"bias": [-0.7, -0.5, -0.3], **TIDY_GRID}, instances=True),
    "agglomerate": Method(agglomerate, {"threshold": [0.3, 0.5, 0.7], **TIDY_GRID}, instances=True),
}


def method(name: str) -> Method:
    """The method called ``name``; a :class:`UserError` listing the valid names otherwise."""
    if name not in METHODS:
        raise UserError(f"unknown post-processing method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


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
