"""Whether this machine has the C compiler that ``pip install`` uses for alfine's optional C modules (setup.py):
where it has, they must be built; where not, the install leaves them out and numpy or Python does their work."""

from __future__ import annotations

import shutil
import sysconfig

import pytest


def _compiler_name() -> str:
    """Python's configured C compiler (``CC``, else ``cc``), the one setuptools runs."""
    return (sysconfig.get_config_var("CC") or "cc").split()[0]


def c_compiler() -> str | None:
    """The path of that compiler, or None where it is not installed."""
    return shutil.which(_compiler_name())


def skip_without_c_compiler() -> None:
    """Skip the calling test where there is no C compiler (the install then leaves the C modules out)."""
    if c_compiler() is None:
        pytest.skip(f"no C compiler ({_compiler_name()}): the install leaves alfine's C modules out")
