"""Reading and editing done markers the way their format is documented (lib/alfine/blockwise/markers.py),
independently of the library's own reader: ``done/N`` files, and ``done/*.ids`` journals of one id a line."""

from __future__ import annotations

import os
from pathlib import Path


def done_ids(markers: str | Path) -> set[int]:
    """The finished block ids under the markers folder ``markers`` (the one holding ``done/``)."""
    folder = Path(markers) / "done"
    if not folder.is_dir():
        return set()
    ids = set()
    for entry in folder.iterdir():
        if entry.name.isdigit():
            ids.add(int(entry.name))
        elif entry.name.endswith(".ids"):
            text = entry.read_text()
            ids.update(int(line) for line in text.split("\n")[:-1] if line.strip())
    return ids


def unmark(markers: str | Path, block_id: int) -> None:
    """Forget that block ``block_id`` is done (as a kill between its write and its marker leaves it)."""
    folder = Path(markers) / "done"
    if (folder / str(block_id)).exists():
        os.remove(folder / str(block_id))
    for journal in folder.glob("*.ids"):
        lines = journal.read_text().split("\n")[:-1]
        journal.write_text("".join(f"{line}\n" for line in lines if line != str(block_id)))
