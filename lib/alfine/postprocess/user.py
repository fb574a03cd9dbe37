"""A user's own post-processing function, named as ``package.module:function`` or ``path/to/file.py:function``.

The function is called as ``function(prediction, **params)`` with the prediction ``[C, *spatial]``
and returns a label or class array of the spatial shape.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType

from .. import code_gate
from ..errors import UserError


def load_function(spec: str) -> Callable:
    """The callable named by ``spec``: ``module:function`` (imported) or ``file.py:function`` (loaded from the file).

    A spec whose module part ends in ``.py`` or contains a path separator is a file. Raises
    :class:`UserError` when the spec has no ``:``, the command did not allow it (:mod:`alfine.code_gate`),
    the file or module cannot be found or
    imported, or the name is missing or not callable.
    """
    source, _, name = spec.rpartition(":") if isinstance(spec, str) else ("", "", "")
    if not source or not name:
        raise UserError(f"a post-processing function is given as module:function or file.py:function, got {spec!r}")
    code_gate.check(spec, "post-processing function")
    is_file = source.endswith(".py") or "/" in source or os.sep in source
    module = _load_file(source) if is_file else _import(source)
    function = getattr(module, name, None)
    if function is None:
        raise UserError(f"{source} has no function {name!r} (post-processing function {spec!r})")
    if not callable(function):
        raise UserError(f"{source}:{name} is not callable (post-processing function {spec!r})")
    return function


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise UserError(f"cannot import module {name!r} for a post-processing function: {error}") from error


def _load_file(path: str) -> ModuleType:
    if not os.path.isfile(path):
        raise UserError(f"post-processing function file {path!r} does not exist")
    absolute = os.path.abspath(path)
    # A module name of its own per file, so two files with the same name do not collide.
    name = f"alfine_user_{hashlib.sha1(absolute.encode()).hexdigest()[:12]}"
    module_spec = importlib.util.spec_from_file_location(name, absolute)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # as an import would; dataclasses and pickle look modules up there
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise UserError(f"cannot load post-processing function file {path!r}: {error}") from error
    return module
