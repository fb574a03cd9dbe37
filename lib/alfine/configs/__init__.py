"""Typed JSON configs and the named config store."""

from .schema import Tagged, from_dict, load, parse_json, read_json, to_dict
from .store import ConfigStore, check_name

__all__ = ["ConfigStore", "Tagged", "check_name", "from_dict", "load", "parse_json", "read_json", "to_dict"]
