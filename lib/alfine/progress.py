"""Progress bars on stderr, off when stderr is not a terminal or when turned off."""

from __future__ import annotations

import sys

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Turn progress bars on or off for this process (``--no-progress`` turns them off)."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    """Whether progress bars are shown: on, and stderr is a terminal."""
    return _enabled and sys.stderr.isatty()


def bar(iterable=None, total: int | None = None, desc: str = "", unit: str = "it"):
    """A tqdm progress bar over ``iterable``, or a disabled one that still counts."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled(), file=sys.stderr, dynamic_ncols=True)
