"""Bulk chunk I/O of zarr arrays through tensorstore, when asked for (``ALFINE_TENSORSTORE=1``).

zarr-python stays in charge of everything else (creating arrays, attributes, geometry): this only
reads and writes voxels of an array zarr opened, through tensorstore's ``zarr`` (format 2) or
``zarr3`` driver on the same store. It writes the same chunk files, byte for byte, as zarr-python with
alfine's compressors, and reads what either wrote. Where tensorstore cannot serve an array (another
fsspec protocol, an unsupported codec), :func:`open_bulk` returns None and zarr-python does the I/O.

It is off by default because tensorstore aborts a process that forks after using it (its threads
cannot be forked): with it on, do not use ``fork`` multiprocessing (e.g. the trainer's data loader
workers) in a process that read or wrote volumes. Processes started afresh (daisy's workers, job
arrays, ``subprocess``) are unaffected.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .urls import VolumeUrl

log = logging.getLogger(__name__)

SWITCH = "ALFINE_TENSORSTORE"
PROTOCOLS = ("", "file", "s3")


def enabled() -> bool:
    """Whether ``ALFINE_TENSORSTORE`` asks for tensorstore I/O (``1``, ``true``, ``yes`` or ``on``)."""
    return os.environ.get(SWITCH, "").strip().lower() in ("1", "true", "yes", "on")


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
        log.warning("%s is set but tensorstore is not installed: zarr-python does the I/O", SWITCH)
        return None
    driver = "zarr" if array.metadata.zarr_format == 2 else "zarr3"
    spec = {"driver": driver, "kvstore": store, "path": array.path}  # the array itself (an image group's level)
    try:
        return ts.open(spec, open=True, read=True, write=writable).result()
    except Exception as e:  # an array tensorstore cannot serve: zarr-python does the I/O
        log.info("%s: tensorstore cannot open it (%s); zarr-python does the I/O", parsed.url, e)
        return None
