"""Blockwise processing: layouts with ids 0..N-1, done markers, and running on daisy."""

from .contract import WHOLE, BlockRequest
from .layout import Block, BlockLayout, check_chunk_aligned
from .markers import DoneMarkers, markers_url_for
from .runner import check_request, run_blocks

__all__ = ["Block", "BlockLayout", "BlockRequest", "DoneMarkers", "check_chunk_aligned", "check_request",
           "markers_url_for", "run_blocks", "WHOLE"]
