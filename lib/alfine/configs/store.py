"""Named configs in a directory tree: ``<store>/<category>/<name>.json``.

The store is any fsspec URL (a local directory by default). Saving the same config again
under its name is a no-op; saving a different one under an existing name is refused, so a
name always means one thing. Names and categories are single path components of letters,
digits, ``.``, ``_`` and ``-`` (not starting with a dot): nothing can escape the store.

Layout, e.g. ``examples/configs``::

    <store>/datasplits/<name>.json or <name>.csv   which volumes to train and validate on
    <store>/architectures/<name>.json               the network
    <store>/tasks/<name>.json                       what it learns
    <store>/trainers/<name>.json                    how it learns
    <store>/runs/<name>.json                        runs assembled from named parts (written by alfine-train)
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any

from ..errors import StoreError
from .schema import from_dict, parse_json, to_dict

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def check_name(name: str, what: str = "config name") -> str:
    """``name`` if it is a safe single path component; a :class:`StoreError` otherwise."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise StoreError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-' (no '/', '..', or URL), "
            "at most 128 characters"
        )
    return name


def canonical(config: Any) -> str:
    """The canonical JSON text of a config (a dataclass or plain JSON data)."""
    return json.dumps(to_dict(config), indent=2, sort_keys=True) + "\n"


class ConfigStore:
    """Save, load and list named configs under ``root`` (a path or fsspec URL)."""

    def __init__(self, root: str):
        import fsspec

        self.root = root.rstrip("/")
        self.fs, self._path = fsspec.core.url_to_fs(self.root)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def _file(self, category: str, name: str) -> str:
        return f"{self._path}/{check_name(category, 'category')}/{check_name(name)}.json"

    def save(self, category: str, name: str, config: Any) -> bool:
        """Store ``config`` as ``name``; True if written, False if the same config was already there."""
        path = self._file(category, name)
        text = canonical(config)
        if self.fs.exists(path):
            return self._same_or_refuse(path, text, category, name)
        self.fs.makedirs(path.rpartition("/")[0], exist_ok=True)
        if not self.local:
            self.fs.pipe_file(path, text.encode())  # one PUT: whole or absent
            return True
        fd, tmp = tempfile.mkstemp(dir=path.rpartition("/")[0], prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.link(tmp, path)  # creates `path` only if absent: two writers cannot both win
        except FileExistsError:
            return self._same_or_refuse(path, text, category, name)
        finally:
            os.unlink(tmp)
        return True

    def _same_or_refuse(self, path: str, text: str, category: str, name: str) -> bool:
        existing = canonical(parse_json(self.fs.cat_file(path), path))
        if existing != text:
            raise StoreError(
                f"{self.root}: a different {category} config named {name!r} exists; "
                "choose another name (stored configs are never replaced)"
            )
        return False

    def load(self, category: str, name: str, cls: Any = None) -> Any:
        """The config ``name``: as ``cls`` when given, else as parsed JSON."""
        path = self.find(category, name)
        data = parse_json(self.fs.cat_file(path), path)
        return data if cls is None else from_dict(cls, data, path)

    def find(self, category: str, name: str, suffixes: tuple[str, ...] = (".json",)) -> str:
        """The file holding config ``name`` with the first of ``suffixes`` found; a :class:`StoreError` listing
        the stored names when there is none."""
        stem = self._file(category, name).removesuffix(".json")
        for suffix in suffixes:
            if self.fs.exists(stem + suffix):
                return self.fs.unstrip_protocol(stem + suffix) if not self.local else stem + suffix
        known = ", ".join(self.list(category)) or "none"
        raise StoreError(f"{self.root}: no {category} config named {name!r} (stored: {known})")

    def list(self, category: str) -> list[str]:
        """The names stored in ``category``, sorted."""
        folder = f"{self._path}/{check_name(category, 'category')}"
        if not self.fs.exists(folder):
            return []
        names = [p.rpartition("/")[2] for p in self.fs.ls(folder, detail=False)]
        return sorted({n.rpartition(".")[0] for n in names if n.endswith((".json", ".csv")) and not n.startswith(".")})
