"""Blockwise processing: layouts with ids 0..N-1, done markers, and running on daisy.

Its names are imported when first used, so a daisy worker that needs one module of it (to unpickle its
block function) does not import the others.
"""

import importlib

_WHERE = {"WHOLE": "contract", "BlockRequest": "contract", "Block": "layout", "BlockLayout": "layout",
          "check_chunk_aligned": "layout", "DoneMarkers": "markers", "markers_url_for": "markers",
          "check_request": "runner", "run_blocks": "runner"}

__all__ = ["Block", "BlockLayout", "BlockRequest", "DoneMarkers", "check_chunk_aligned", "check_request",
           "markers_url_for", "run_blocks", "WHOLE"]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
