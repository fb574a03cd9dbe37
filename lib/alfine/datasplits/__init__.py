"""Datasplits: the datasets a run trains and validates on, raw normalisation, and training crop centres."""

from .config import (
    Dataset,
    DatasetGeometry,
    Datasplit,
    DtypeRange,
    MinMax,
    Normalisation,
    Percentile,
    anchored,
    check_dataset,
    load_datasplit,
    resolve_normalisations,
)
from .normalise import measure_percentiles, normalise
from .sampling import CropSampler, centred_roi

__all__ = ["CropSampler", "Dataset", "DatasetGeometry", "Datasplit", "DtypeRange", "MinMax", "Normalisation",
           "Percentile", "anchored", "centred_roi", "check_dataset", "load_datasplit", "measure_percentiles",
           "normalise", "resolve_normalisations"]
