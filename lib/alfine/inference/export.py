"""A torch model as one ONNX graph with metadata, and how far onnxruntime's outputs are from torch's (imports torch).

The graph is the network followed by the task's activation (what :class:`TorchPredictor` runs),
batch 1, exported by torch's dynamo exporter to a single file (no external data) with a fixed
input shape, or dynamic spatial axes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings

import numpy as np

from ..errors import UserError
from .metadata import KEY

log = logging.getLogger(__name__)

OPSET = 18


def onnx_bytes(model, example, dynamic: bool, metadata: dict) -> bytes:
    """The serialised ONNX graph of ``model`` on ``example``, with ``metadata`` under :data:`KEY`."""
    import onnx
    import torch

    dynamic_shapes = None
    if dynamic:
        axes = {axis: torch.export.Dim.DYNAMIC for axis in range(2, example.dim())}
        dynamic_shapes = (axes,)
    # The exporter's progress notes and passes ("torchvision is not installed", constant folding) are noise here.
    noisy = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in noisy]
    for logger in noisy:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), dynamo=True, external_data=False, opset_version=OPSET,
                                        input_names=["raw"], output_names=["prediction"],
                                        dynamic_shapes=dynamic_shapes, verbose=False)
    finally:
        for logger, level in zip(noisy, levels, strict=True):
            logger.setLevel(level)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {KEY: json.dumps(metadata, sort_keys=True)})
    return proto.SerializeToString()


def max_difference(onnx_data: bytes, model, example) -> float:
    """The largest absolute difference between onnxruntime's and torch's outputs on ``example``."""
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(onnx_data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
    with torch.inference_mode():
        expected = model(example).numpy()
    if got.shape != expected.shape:
        raise UserError(f"the ONNX model outputs {got.shape}, torch {expected.shape}: not exported")
    return float(np.max(np.abs(got - expected))) if got.size else 0.0
