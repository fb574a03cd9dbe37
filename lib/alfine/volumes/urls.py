"""Volume URLs: ``CONTAINER/ARRAY_PATH`` where CONTAINER is a ``.zarr`` (or ``.n5``) store.

``data.zarr/raw`` names array ``raw`` in ``data.zarr``; ``s3://b/x.zarr/pred/affs`` names
``pred/affs`` in ``s3://b/x.zarr``. Without a ``.zarr``/``.n5`` component, the last path
component is the array and the rest its container. Any fsspec protocol works; endpoints
and credentials come from the environment the way fsspec and s3fs read them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VolumeError

CONTAINER_SUFFIXES = (".zarr", ".n5")
READ_ONLY_PROTOCOLS = ("http", "https")


@dataclass(frozen=True)
class VolumeUrl:
    """A parsed volume URL: the container (a store URL), the array path inside it, its protocol."""

    url: str
    container: str
    path: str
    protocol: str

    @property
    def is_n5(self) -> bool:
        return self.container.rstrip("/").endswith(".n5")

    @property
    def is_local(self) -> bool:
        return self.protocol in ("", "file")

    @property
    def read_only(self) -> bool:
        return self.protocol in READ_ONLY_PROTOCOLS

    @property
    def parent_path(self) -> str:
        """The array's group inside the container ("" for the root)."""
        return self.path.rpartition("/")[0]

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def local_container(self) -> str:
        """The container as a local filesystem path (only for local URLs)."""
        return self.container[len("file://"):] if self.container.startswith("file://") else self.container

    @property
    def store(self):
        """The container as zarr should open it: for local files a :class:`.local_store.MetadataLocalStore`
        (zarr's local store, metadata without thread hops; it never creates the folder), elsewhere the URL."""
        if not self.is_local:
            return self.container
        from .local_store import MetadataLocalStore

        return MetadataLocalStore(self.local_container)


def parse_volume_url(url: str) -> VolumeUrl:
    """Split ``url`` into container and array path; an empty or malformed URL is a :class:`VolumeError`."""
    if not isinstance(url, str) or not url.strip():
        raise VolumeError(f"volume URL must be a non-empty string, got {url!r}")
    text = url.strip().rstrip("/")
    protocol, sep, rest = text.partition("://")
    if not sep:
        protocol, rest = "", text
    prefix = f"{protocol}://" if sep else ""
    leading = "/" if rest.startswith("/") else ""
    parts = [p for p in rest.split("/") if p]
    if not parts:
        raise VolumeError(f"volume URL {url!r} names no array")
    if any(p == ".." for p in parts):
        raise VolumeError(f"volume URL {url!r} must not contain '..'")
    container_end = max((i for i, p in enumerate(parts) if p.endswith(CONTAINER_SUFFIXES)), default=None)
    if container_end is None:
        if len(parts) == 1 and not leading and not sep:
            container_parts, path_parts = ["."], parts
        else:
            container_parts, path_parts = parts[:-1], parts[-1:]
    else:
        container_parts, path_parts = parts[: container_end + 1], parts[container_end + 1:]
    container = prefix + leading + "/".join(container_parts)
    return VolumeUrl(url=text, container=container, path="/".join(path_parts), protocol=protocol)
