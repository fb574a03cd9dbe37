"""Small files (configs, scores, records, models) on any fsspec URL, written whole or not at all."""

from __future__ import annotations

import os


def write_whole(url: str, data: bytes, sync: bool = True) -> None:
    """Write ``data`` to ``url`` so that readers see the old file or the new one, never a part: locally a
    temporary file of this process, flushed to disk (unless not ``sync``: then it survives a killed process,
    not a crashed machine) and moved into place; on object stores one PUT."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    parent = path.rpartition("/")[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" not in protocols and "local" not in protocols:
        fs.pipe_file(path, data)
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
