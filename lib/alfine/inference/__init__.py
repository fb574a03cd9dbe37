"""Inference: seam-free blockwise prediction of raw volumes with a trained model.

:func:`prediction_layout` and the specs need no torch; :class:`TorchPredictor` (from
:mod:`alfine.inference.torch_model`, imported on first use) does.
"""

from .layout import prediction_layout
from .predict import PredictBlock, TorchSpec, predict_volume, predictor_for, run_predictor_spec


def __getattr__(name: str):
    if name == "TorchPredictor":
        from .torch_model import TorchPredictor

        return TorchPredictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PredictBlock", "TorchPredictor", "TorchSpec", "predict_volume", "prediction_layout", "predictor_for",
           "run_predictor_spec"]
