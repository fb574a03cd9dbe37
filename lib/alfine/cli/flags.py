"""Declaring a command's flags: one :func:`flag` per dataclass field, and the shared ones.

Every command uses the same words for the same things (the README's "Flags, configs and
environment"); the factories here give them once, so a flag means the same in every tool.
Parsers take command-line text or the JSON value of a config file alike.
Nothing here imports more than the standard library.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

REQUIRED = dataclasses.MISSING


def flag(default: Any = REQUIRED, help: str = "", *, metavar: str | None = None, parse=None, choices=None,
         names_code: bool = False, command_line_only: bool = False) -> Any:
    """A dataclass field that becomes ``--name``; ``parse`` turns text (or JSON) into the value.

    ``names_code``: the value may name user code, which runs when the flag is given on the command line
    (not from ``--config`` or the environment; :mod:`alfine.code_gate`). ``command_line_only``: refused
    from ``--config`` and the environment."""
    if default is not REQUIRED and default is not None and default is not False:
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help = f"{help} (default: {shown})"
    elif default is REQUIRED:
        help = f"{help} (required)"
    metadata: dict[str, Any] = {"help": help}
    if metavar:
        metadata["metavar"] = metavar
    if parse:
        metadata["type"] = parse
    if choices:
        metadata["choices"] = choices
    if names_code:
        metadata["names_code"] = True
    if command_line_only:
        metadata["command_line_only"] = True
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# -- parsers (text from the command line or environment, or JSON values from --config) -------


def _as_argument_error(parse):
    """``parse`` raising argparse's error type, so argparse names the flag in the message."""

    def wrapped(text):
        from ..errors import UserError

        try:
            return parse(text)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    wrapped.__name__ = parse.__name__
    return wrapped


@_as_argument_error
def ints(text) -> tuple[int, ...]:
    """``"8,4,4"`` or ``[8, 4, 4]`` -> ``(8, 4, 4)``."""
    from ..geometry import parse_ints

    return parse_ints(text, "")


@_as_argument_error
def positive_ints(text) -> tuple[int, ...]:
    from ..geometry import parse_ints

    return parse_ints(text, "", allow_negative=False)


@_as_argument_error
def roi(text):
    """``"Z0,Y0,X0:Z1,Y1,X1"`` -> a ``funlib.geometry.Roi`` in world units."""
    from ..geometry import parse_roi

    return parse_roi(text)


def json_object(text) -> dict:
    """A JSON object given as text or already parsed."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


# -- the shared vocabulary ------------------------------------------------------------------


def input_url(help: str = "the volume to read", default: Any = REQUIRED) -> Any:
    return flag(default, help, metavar="URL")


def output_url(help: str = "the volume to write", default: Any = REQUIRED) -> Any:
    return flag(default, help, metavar="URL")


def shape(help: str = "size in voxels", default: Any = REQUIRED) -> Any:
    return flag(default, help, metavar="Z,Y,X", parse=positive_ints)


def voxel_size(help: str = "voxel size in world units", default: Any = None) -> Any:
    return flag(default, help, metavar="Z,Y,X", parse=positive_ints)


def offset(help: str = "world position of the first voxel's corner", default: Any = None) -> Any:
    return flag(default, help, metavar="Z,Y,X", parse=ints)


def region(help: str = "region in world units, begin inclusive, end exclusive (default: the whole input)") -> Any:
    return flag(None, help, metavar="Z0,Y0,X0:Z1,Y1,X1", parse=roi)


def block_shape(help: str = "the blocks' write size in voxels", default: Any = None) -> Any:
    return flag(default, help, metavar="Z,Y,X", parse=positive_ints)


def chunk_shape(help: str = "chunk size of written arrays in voxels", default: Any = (64, 64, 64)) -> Any:
    return flag(default, help, metavar="Z,Y,X", parse=positive_ints)


def zarr_format() -> Any:
    return flag(2, "zarr format of created arrays: 2 (widest compatibility) or 3 (allows --shards)",
                choices=[2, 3], parse=int)


def shards() -> Any:
    return flag(None, "zarr 3 shard size in voxels, a multiple of the chunk size (fewer, larger files)",
                metavar="Z,Y,X", parse=positive_ints)


def compression(help: str = "compression of created arrays", default: Any = "zstd") -> Any:
    return flag(default, help, choices=["zstd", "lz4", "gzip", "none"])


def seed(default: int = 0) -> Any:
    return flag(default, "random seed: the same seed gives the same result", metavar="N", parse=int)


def workers(default: int = 1) -> Any:
    return flag(default, "whole-volume mode: how many workers process blocks at once, at most (work that holds "
                         "Python's lock, in too few blocks to fork workers, runs in the command's own thread)",
                metavar="N", parse=int)


def overwrite() -> Any:
    return flag(False, "replace outputs that exist with another shape, dtype or geometry instead of refusing")


def block_id() -> Any:
    return flag(None, "process exactly this block (0..N-1, see --list-blocks) and exit: the unit of a job array",
                metavar="N", parse=int)


def list_blocks() -> Any:
    return flag(False, "print the blocks (id and world region, one JSON object a line) and exit")


def status() -> Any:
    return flag(False, "print how many blocks of the output are done (per step, from its done markers) and exit: "
                "runs and creates nothing")


def launcher() -> Any:
    return flag(None, "command prefix that starts each worker, e.g. 'bsub -q gpu -n 4' (default: local processes)",
                metavar="CMD")


def allow_code() -> Any:
    return flag(False, "allow the user code (a post-processing function, a wrapped architecture's module) that a "
                "model.json, run config or --config file names; code named on the command line needs no permission",
                command_line_only=True)


def device() -> Any:
    return flag("auto", "cpu, cuda, cuda:N, or auto (CUDA when present)", metavar="DEVICE")
