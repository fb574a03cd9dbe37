"""Inference: seam-free blockwise prediction of raw volumes with a trained model.

:func:`prediction_layout`, the specs, :class:`OnnxSpec`/:class:`OnnxPredictor` (onnxruntime) and
:func:`resolve_model` need no torch; :class:`TorchPredictor` (:mod:`alfine.inference.torch_model`), imported on
first use, and the ONNX export (:mod:`alfine.inference.export`) do.
"""

from .layout import prediction_layout
from .onnx_model import OnnxPredictor, OnnxSpec
from .predict import PredictBlock, TorchSpec, predict_volume, predictor_for, run_predictor_spec
from .resolve import ResolvedModel, resolve_model


def __getattr__(name: str):
    if name == "TorchPredictor":
        from .torch_model import TorchPredictor

        return TorchPredictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["OnnxPredictor", "OnnxSpec", "PredictBlock", "ResolvedModel", "TorchPredictor", "TorchSpec",
           "predict_volume", "prediction_layout", "predictor_for", "resolve_model", "run_predictor_spec"]
