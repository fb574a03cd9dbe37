"""Reading N5 datasets through tensorstore (zarr 3 has no N5 support).

N5 lists dimensions fastest first (x, y, z); the returned view is transposed to alfine's
order (channels, z, y, x), and the caller reverses the attribute lists likewise.
"""

from __future__ import annotations

import json

from ..errors import VolumeError
from . import bulk
from .urls import VolumeUrl


def _kvstore(parsed: VolumeUrl):
    # A directory, so keys such as "raw/attributes.json" resolve inside it.
    if parsed.is_local:
        return {"driver": "file", "path": parsed.local_container.rstrip("/") + "/"}
    return parsed.container.rstrip("/") + "/"  # tensorstore parses s3://, gs://, http(s):// kvstore URLs


def open_n5(parsed: VolumeUrl):
    """The dataset at ``parsed`` as a read-only tensorstore view in z, y, x order, and its attributes."""
    try:
        import tensorstore as ts
    except ImportError:
        raise VolumeError(f"{parsed.url}: reading N5 needs tensorstore (pip install tensorstore)") from None
    if bulk.forked:
        raise VolumeError(f"{parsed.url}: N5 is read through tensorstore, which aborts a process forked from one that "
                          "used it (this one): read N5 before forking, without forked workers, or convert it to zarr")
    spec = {"driver": "n5", "kvstore": _kvstore(parsed), "path": parsed.path}
    bulk.start()  # a process forked after this must not use tensorstore (zarr arrays: .bulk's zarr-python)
    try:
        store = ts.open(spec, open=True, read=True).result()
    except Exception as e:
        raise VolumeError(f"{parsed.url}: cannot open as an N5 dataset ({e})") from None
    attrs_store = ts.KvStore.open(_kvstore(parsed)).result()
    raw = attrs_store.read(f"{parsed.path}/attributes.json").result().value
    attrs = json.loads(bytes(raw)) if raw else {}
    return store.T, attrs
