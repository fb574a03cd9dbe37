"""Volumes: zarr (and N5) arrays by URL, with geometry in world units."""

from .metadata import Geometry
from .prepare import prepare_volume
from .urls import VolumeUrl, parse_volume_url
from .volume import COMPRESSIONS, Volume, exists, open_volume

__all__ = ["COMPRESSIONS", "Geometry", "Volume", "VolumeUrl", "exists", "open_volume", "parse_volume_url",
           "prepare_volume"]
