"""Writing small PNG pictures (previews) with the standard library only."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def write_png(path: str, image: np.ndarray) -> None:
    """Write a uint8 image of shape (H, W) (grey) or (H, W, 3) (RGB) as a PNG file."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2:
        color_type, channels = 0, 1
    elif image.ndim == 3 and image.shape[2] == 3:
        color_type, channels = 2, 3
    else:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    height, width = image.shape[:2]
    rows = image.reshape(height, width * channels)
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
                + chunk(b"IEND", b""))


def label_colors(labels: np.ndarray) -> np.ndarray:
    """An RGB picture of integer labels: a stable pseudo-random colour per id, black for 0."""
    ids = labels.astype(np.uint64)
    hashed = (ids * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    rgb = np.stack([(hashed >> np.uint64(s)) & np.uint64(0xFF) for s in (0, 8, 16)], axis=-1).astype(np.uint8)
    rgb = (rgb // 2 + 96).astype(np.uint8)  # keep colours away from black
    rgb[ids == 0] = 0
    return rgb
