"""Which user code a command may import and run: none that data names, unless the person allows it.

A user's post-processing function (``--method path/file.py:fn``) or a wrapped architecture's module
(``"module": "package.module:Class"``) is code. A command runs such code only when the person
named it on its command line, or passed ``--allow-code`` there; code named by a model.json
(``--params-from``), a run config, run.json or a ``--config`` file is otherwise refused (exit 2).

The gate is open for Python callers of the library (they run code already); the command-line
runner closes it for one command (:func:`restricted`), opening it for the names given on the
command line. Local worker processes forked by that command inherit its state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from .errors import UserError

_state: dict = {"restricted": False, "allowed": frozenset()}


@contextlib.contextmanager
def restricted(allowed: Iterable[str] = (), allow_any: bool = False) -> Iterator[None]:
    """Within the block, only the code named in ``allowed`` (or any, with ``allow_any``) may be loaded."""
    before = dict(_state)
    _state.update(restricted=not allow_any, allowed=frozenset(allowed))
    try:
        yield
    finally:
        _state.update(before)


def refusal(name: str, what: str) -> str | None:
    """Why the code ``name`` (a ``what``) must not be loaded now; None when it may be."""
    if not _state["restricted"] or name in _state["allowed"]:
        return None
    return (f"{what} {name!r} is code named by a file, not by you: alfine runs code only when it is named on the "
            "command line (e.g. --method path/file.py:function) or --allow-code is given there")


def check(name: str, what: str) -> None:
    """A :class:`UserError` when the code ``name`` (a ``what``) must not be loaded (see :func:`refusal`)."""
    reason = refusal(name, what)
    if reason:
        raise UserError(reason)
