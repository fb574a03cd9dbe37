"""Bulk chunk I/O of zarr arrays through tensorstore: the default, ``ALFINE_TENSORSTORE=0`` turns it off.

zarr-python stays in charge of everything else (creating arrays, attributes, geometry): this only
reads and writes voxels of an array zarr opened, through tensorstore's ``zarr`` (format 2) or
``zarr3`` driver on the same store. It writes the same chunk files, byte for byte, as zarr-python with
alfine's compressors, and reads what either wrote. Where tensorstore cannot serve an array (another
fsspec protocol, an unsupported codec, tensorstore not installed), :func:`open_bulk` returns None and
zarr-python does the I/O. On 192³ volumes of 64³ chunks (``tests/benchmarks/bench_volumes.py``, 2 cores)
tensorstore reads and writes whole volumes, single chunks and blocks off the chunk grid 1.3–2.7x as
fast as zarr-python (uint8 and uint64), but for whole uint64 volumes, which both read about as fast;
alfine's own time per call (region to index) is 5–21 µs.

Forks: tensorstore aborts a forked child that uses it once the parent has (its thread pools cannot be
forked); the child may do anything else, zarr-python I/O included. So a process forked from one that
used tensorstore (the trainer's ``fork`` data loader workers, after the trainer read a volume) does
its I/O through zarr-python: :func:`enabled` says False there, and a :class:`~alfine.volumes.Volume`
opened before the fork drops its tensorstore view (:data:`process` changes at every fork). The bytes
are the same either way. N5, which only tensorstore reads, is refused there in one line. Processes
started afresh (daisy's workers, job arrays, ``subprocess``, ``spawn``/``forkserver``
multiprocessing) use tensorstore again.

Writes are not ``fsync``-ed (tensorstore's ``file_io_sync`` is off), as zarr-python's are not: a killed
process loses nothing it wrote, a machine that loses power may.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .urls import VolumeUrl

log = logging.getLogger(__name__)

SWITCH = "ALFINE_TENSORSTORE"
OFF = ("0", "false", "no", "off")
PROTOCOLS = ("", "file", "s3")

started = False
"""Whether this process (or the one it was forked from) has started tensorstore (its threads)."""
forked = False
"""Whether this process was forked after :data:`started`: tensorstore would abort it."""
process = object()
"""A token of this process, replaced in a forked child: views opened before a fork are not used after it."""


def _after_fork_in_child() -> None:
    global forked, process
    forked = forked or started
    process = object()


os.register_at_fork(after_in_child=_after_fork_in_child)


def start() -> None:
    """Note that this process uses tensorstore (call before the first ``tensorstore.open``)."""
    global started
    started = True


def enabled() -> bool:
    """Whether tensorstore does the voxel I/O here: unless ``ALFINE_TENSORSTORE`` is ``0``, ``false``, ``no``
    or ``off``, and not in a process forked from one that had used tensorstore."""
    return not forked and os.environ.get(SWITCH, "").strip().lower() not in OFF


def kvstore(parsed: VolumeUrl) -> dict[str, Any] | None:
    """The tensorstore key-value store of ``parsed``'s container (a local folder or an S3 prefix), or None.

    S3 endpoint and region come from the environment as s3fs reads them (``AWS_ENDPOINT_URL``,
    ``AWS_DEFAULT_REGION``); credentials are left to tensorstore's own lookup of the same variables.
    """
    if parsed.protocol not in PROTOCOLS:
        return None
    if parsed.is_local:
        return {"driver": "file", "path": os.path.abspath(parsed.local_container) + "/"}
    bucket, _, prefix = parsed.container.removeprefix("s3://").partition("/")
    spec: dict[str, Any] = {"driver": "s3", "bucket": bucket, "path": prefix.rstrip("/") + "/" if prefix else ""}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        spec["endpoint"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        spec["aws_region"] = region
    return spec


def open_bulk(parsed: VolumeUrl, array: Any, writable: bool) -> Any | None:
    """A tensorstore view of the zarr ``array`` at ``parsed`` (read-write when ``writable``), or None where
    tensorstore cannot open it. Index it as the zarr array; ``.read().result()`` and ``.write(data).result()``."""
    store = kvstore(parsed)
    if store is None:
        return None
    try:
        import tensorstore as ts
    except ImportError:
        log.debug("tensorstore is not installed: zarr-python does the I/O")
        return None
    driver = "zarr" if array.metadata.zarr_format == 2 else "zarr3"
    spec = {"driver": driver, "kvstore": store, "path": array.path,  # the array itself (an image group's level)
            "context": {"file_io_sync": False}}
    start()
    try:
        return ts.open(spec, open=True, read=True, write=writable).result()
    except Exception as e:  # an array tensorstore cannot serve: zarr-python does the I/O
        log.info("%s: tensorstore cannot open it (%s); zarr-python does the I/O", parsed.url, e)
        return None
