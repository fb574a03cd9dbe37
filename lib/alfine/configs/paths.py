"""Relative paths in config files: they mean a place beside the file, not in the working directory.

A path in a config (a datasplit's volumes, a weights file, another config) that is neither absolute
nor a URL is taken relative to the folder of the file that holds it, so a config folder can be moved
or used from anywhere and means the same volumes. Anchored paths are absolute (or full URLs), so a
config written out again (a run's run.json) no longer depends on where it came from.
"""

from __future__ import annotations

import os
import posixpath


def is_relative(path: str) -> bool:
    """Whether ``path`` is a relative local path (not a URL, not absolute, not ``~``)."""
    return "://" not in path and not os.path.isabs(path) and not path.startswith("~")


def folder_of(url: str) -> str:
    """The folder holding the file ``url``: an absolute path, or a URL for files in object stores."""
    if "://" in url and not url.startswith("file://"):
        return url.rstrip("/").rpartition("/")[0]
    return os.path.dirname(os.path.abspath(url.removeprefix("file://")))


def anchor(path: str, folder: str) -> str:
    """``path`` as written in a file in ``folder``: relative paths joined to the folder, others unchanged."""
    if not is_relative(path):
        return path
    if "://" in folder:
        scheme, _, rest = folder.partition("://")
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, path))}"
    return os.path.normpath(os.path.join(folder, path))
