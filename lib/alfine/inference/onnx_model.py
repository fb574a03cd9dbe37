"""An exported ONNX model ready to predict with onnxruntime (no torch).

:class:`OnnxSpec` is the picklable predictor spec of :mod:`alfine.inference.predict`;
:class:`OnnxPredictor` is what it builds: one onnxruntime session, made once per process.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from ..configs import from_dict
from ..errors import UserError
from ..tasks import TaskConfig
from .metadata import ExportedArchitecture, metadata_of_session, read_file

log = logging.getLogger(__name__)


def worker_threads(workers: int = 1) -> int:
    """The cores this process may use (its CPU affinity), shared fairly among ``workers`` processes."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


@dataclass(frozen=True)
class OnnxSpec:
    """An exported model at ``model`` (any fsspec URL) with its ``architecture`` and ``task`` configs
    (dicts), the graph's ``input_shape`` and whether its spatial axes are ``dynamic``; run on ``device``
    (``cpu``, ``cuda``, ``cuda:N`` or ``auto``) with ``threads`` intra-op threads (0: all cores)."""

    kind: ClassVar[str] = "onnx"
    architecture: dict
    task: dict
    model: str
    input_shape: tuple[int, ...]
    dynamic: bool = False
    device: str = "cpu"
    threads: int = 0

    def architecture_config(self) -> ExportedArchitecture:
        return ExportedArchitecture(self.architecture, self.input_shape, self.dynamic, self.model)

    def task_config(self) -> TaskConfig:
        return from_dict(TaskConfig, self.task, f"{self.model} (task)")

    def describe(self) -> dict:
        """A JSON-ready description, also the cache key of :func:`~alfine.inference.predictor_for`."""
        return {"kind": self.kind, **asdict(self), "input_shape": list(self.input_shape)}

    def build(self) -> OnnxPredictor:
        return OnnxPredictor(self.model, self.architecture_config(), self.device, self.threads)

    @classmethod
    def from_metadata(cls, url: str, metadata: dict, device: str = "cpu", threads: int = 0) -> OnnxSpec:
        return cls(metadata["architecture"], metadata["task"], url, tuple(metadata["input_shape"]),
                   bool(metadata["dynamic"]), device, threads)


def providers_for(device: str) -> list:
    """onnxruntime execution providers for ``device``; a :class:`UserError` for CUDA where it is absent."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]
    name, _, index = device.partition(":")
    if name != "cuda" or (index and not index.isdigit()):
        raise UserError(f"--device {device}: expected cpu, cuda, cuda:N or auto")
    if "CUDAExecutionProvider" not in available:
        raise UserError(f"--device {device}: this onnxruntime has no CUDA provider (it has {', '.join(available)})")
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


class OnnxPredictor:
    """``raw [C_in, *input] float32`` (normalised) → ``[C_out, *output] float32`` activated outputs."""

    def __init__(self, url: str, architecture: ExportedArchitecture, device: str = "cpu", threads: int = 0):
        import onnxruntime

        self.architecture = architecture
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or worker_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = onnxruntime.InferenceSession(read_file(url), options, providers=providers_for(device))
        except UserError:
            raise
        except Exception as e:  # onnxruntime's own error types
            raise UserError(f"{url}: cannot load the ONNX model ({str(e).splitlines()[0]})") from None
        self.metadata = metadata_of_session(self.session, url)
        self.input_name = self.session.get_inputs()[0].name
        log.info("predicting with %s on %s (%d threads)", url, self.session.get_providers()[0],
                 options.intra_op_num_threads)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """The activated prediction of one normalised input; a :class:`UserError` for a wrong shape."""
        self.architecture.check_input_array(raw.shape)
        x = np.ascontiguousarray(raw, dtype=np.float32)[None]
        return self.session.run(None, {self.input_name: x})[0][0]
