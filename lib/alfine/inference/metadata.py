"""An exported model's metadata: what inference needs besides the graph (no torch, no onnx package).

The same JSON object is stored inside the ONNX file (``metadata_props`` key ``alfine``) and as
``model.json`` beside it::

    {"format": "alfine-model/1", "run": URL, "iteration": N, "criterion": str | null,
     "architecture": {...}, "task": {...}, "input_shape": [...], "output_shape": [...],
     "dynamic": bool, "context": [...], "input_voxel_size": [...] | null,
     "output_voxel_size": [...] | null, "channel_names": [...], "normalisation": {...},
     "postprocessing": {"method", "params", "channels", "criterion", "scores"} | null,
     "weights_sha256": hex, "opset": int}

``input_shape`` is the fixed block input of the graph (for a dynamic graph: the shape it was
exported and checked with); ``context`` is input voxels lost per side.
:class:`ExportedArchitecture` answers the shape questions of blockwise inference from it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..architectures import ArchitectureConfig
from ..configs import from_dict
from ..errors import UserError

FORMAT = "alfine-model/1"
KEY = "alfine"
REQUIRED = ("format", "architecture", "task", "input_shape", "output_shape", "dynamic", "context", "channel_names",
            "normalisation")


def sidecar_url(model_url: str) -> str:
    """Where ``model.json`` of the ONNX file ``model_url`` lives: the same folder."""
    folder, slash, _ = model_url.rstrip("/").rpartition("/")
    return f"{folder}{slash}model.json"


def read_file(url: str) -> bytes:
    """The bytes at ``url``; a :class:`UserError` naming it if there is no such file."""
    import fsspec

    try:
        with fsspec.open(url, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{url}: no such model file") from None


def metadata_of_session(session, url: str) -> dict:
    """The alfine metadata of an onnxruntime session's model; a :class:`UserError` if it has none."""
    text = session.get_modelmeta().custom_metadata_map.get(KEY)
    if text is None:
        raise UserError(f"{url}: an ONNX model without alfine metadata (export it with alfine-export-model)")
    return check_metadata(json.loads(text), url)


def read_metadata(url: str) -> dict:
    """The metadata inside the ONNX file at ``url`` (read with onnxruntime, without optimising the graph)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = onnxruntime.InferenceSession(read_file(url), options, providers=["CPUExecutionProvider"])
    except UserError:
        raise
    except Exception as e:  # onnxruntime raises its own types for files that are not ONNX
        raise UserError(f"{url}: not an ONNX model ({str(e).splitlines()[0]})") from None
    return metadata_of_session(session, url)


def check_metadata(metadata: dict, url: str) -> dict:
    """``metadata`` if it is alfine model metadata this version reads; else a :class:`UserError`."""
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise UserError(f"{url}: model metadata of format {found!r}; this alfine reads {FORMAT!r}")
    missing = [k for k in REQUIRED if k not in metadata]
    if missing:
        raise UserError(f"{url}: model metadata lacks {', '.join(missing)}")
    return metadata


class ExportedArchitecture:
    """The shapes of an exported graph, torch-free: what :func:`~alfine.inference.prediction_layout`
    and the predictors ask of an architecture config.

    A fixed graph takes exactly ``input_shape``; a dynamic one every size the architecture
    allows. ``output = (input - 2 * context) * upsample_factor``.
    """

    # Shape checks and sizing are the architecture base class's, on this class's answers.
    check_input_shape = ArchitectureConfig.check_input_shape
    check_input_array = ArchitectureConfig.check_input_array
    input_shape_problem = ArchitectureConfig.input_shape_problem
    largest_input_shape = ArchitectureConfig.largest_input_shape

    def __init__(self, architecture: dict, input_shape: Sequence[int], dynamic: bool, source: str = "model"):
        self.config = from_dict(ArchitectureConfig, architecture, f"{source} (architecture)")
        self.kind = self.config.kind
        self.input_shape = [int(s) for s in input_shape]
        self.fmaps_in = self.config.fmaps_in
        self.dynamic = bool(dynamic)

    def dims(self) -> int:
        return len(self.input_shape)

    def valid_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if self.dynamic:
            return self.config.valid_sizes()
        return tuple(self.input_shape), (0,) * self.dims()

    def context(self) -> tuple[int, ...]:
        return tuple(self.config.context())

    def upsample_factor(self) -> tuple[int, ...]:
        return tuple(self.config.upsample_factor())

    def activation_bytes(self, input_shape: Sequence[int], out_channels: int, batch_size: int = 1) -> int:
        return self.config.activation_bytes(input_shape, out_channels, batch_size)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        self.check_input_shape(input_shape)
        return tuple((int(s) - 2 * c) * f for s, c, f in
                     zip(input_shape, self.context(), self.upsample_factor(), strict=True))
