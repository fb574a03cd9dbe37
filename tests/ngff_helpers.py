"""Validating alfine's outputs against OME-NGFF with ome-zarr-models, and opening them with ome-zarr's reader."""

from __future__ import annotations

import zarr


def _models(zarr_format: int) -> dict:
    """ome-zarr-models' image and image-label classes of the version alfine writes on ``zarr_format``."""
    # ome-zarr-models 1.6 declares its classes before pydantic-zarr's array specs are importable under
    # pydantic 2.14: build them once with those specs in scope.
    if zarr_format == 2:
        import pydantic_zarr.v2 as specs
        from ome_zarr_models.v04 import Image, ImageLabel
    else:
        import pydantic_zarr.v3 as specs
        from ome_zarr_models.v05 import Image, ImageLabel
    for model in (Image, ImageLabel):
        model.model_rebuild(_types_namespace=vars(specs))
    return {"image": Image, "label": ImageLabel}


def image_groups(container: str) -> dict[str, zarr.Group]:
    """Every group in ``container`` (the root included, as "") that carries OME-NGFF multiscales."""
    root = zarr.open_group(container, mode="r")
    found = {}
    for path, node in [("", root), *root.members(max_depth=None)]:
        attrs = node.attrs.asdict() if isinstance(node, zarr.Group) else {}
        if "multiscales" in attrs or "multiscales" in attrs.get("ome", {}):
            found[path] = node
    return found


def validate(group: zarr.Group):
    """``group`` validated by ome-zarr-models as an image-label (where it says it is one) or an image: the model."""
    attrs = group.attrs.asdict()
    label = "image-label" in attrs or "image-label" in attrs.get("ome", {})
    return _models(group.metadata.zarr_format)["label" if label else "image"].from_zarr(group)


def validate_container(container: str) -> dict:
    """Every image group of ``container`` validated: ``{path: model}``; at least one."""
    models = {path: validate(group) for path, group in image_groups(container).items()}
    assert models, f"{container} holds no OME-NGFF image"
    return models


def ome_zarr_images(url: str) -> list[tuple[str, list[tuple]]]:
    """What ome-zarr's reader finds at ``url``: (name, shapes of the levels) of each image node."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    location = parse_url(url)
    assert location is not None, f"ome-zarr cannot open {url}"
    return [(node.metadata.get("name"), [tuple(d.shape) for d in node.data]) for node in Reader(location)()
            if node.data]
