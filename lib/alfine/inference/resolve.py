"""From a ``--model`` argument to a predictor spec and what inference needs with it (torch-free).

``--model`` is an exported ONNX file (``model.onnx``, any fsspec URL) or a run directory,
``RUN`` (latest checkpoint), ``RUN@N`` (checkpoint N) or ``RUN@best`` (validation's best for
the task's main metric). ONNX files are read with onnxruntime alone; a run's checkpoint needs
torch only when its predictor is built.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..configs import from_dict
from ..datasplits import Normalisation
from ..errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """A predictor spec, the raw normalisation it was trained with, the raw voxel size it expects (None:
    unknown) and the metadata it came with (an ONNX model's, or None for a run)."""

    spec: Any
    normalisation: Normalisation
    input_voxel_size: tuple[int, ...] | None
    metadata: dict | None = None


def split_run_argument(argument: str) -> tuple[str, int | str | None]:
    """``"RUN@N"`` → ``(RUN, N)``, ``"RUN@best"`` → ``(RUN, "best")``, ``"RUN"`` → ``(RUN, None)``."""
    base, at, suffix = argument.rpartition("@")
    if at and (suffix == "best" or suffix.isdigit()):
        return base, ("best" if suffix == "best" else int(suffix))
    return argument, None


def is_onnx(argument: str) -> bool:
    return argument.lower().endswith(".onnx")


def resolve_model(argument: str, device: str = "cpu", threads: int = 0) -> ResolvedModel:
    """The model named by ``argument`` (see the module); a :class:`UserError` naming it where there is none,
    where ``device`` is not here, or where a run's checkpoint cannot be read."""
    if is_onnx(argument):
        from .metadata import read_metadata
        from .onnx_model import OnnxSpec, providers_for

        providers_for(device)  # no CUDA here is an error now, not in every block
        metadata = read_metadata(argument)
        normalisation = from_dict(Normalisation, metadata["normalisation"], f"{argument} (normalisation)")
        voxel = metadata.get("input_voxel_size")
        spec = OnnxSpec.from_metadata(argument, metadata, device, threads)
        return ResolvedModel(spec, normalisation, tuple(voxel) if voxel else None, metadata)
    return _resolve_run(argument, device, threads)


def _resolve_run(argument: str, device: str, threads: int) -> ResolvedModel:
    import dataclasses

    from ..runs import RunDirectory, choose_device
    from ..training import checkpoints
    from ..volumes import open_volume
    from .predict import run_predictor_spec

    choose_device(device)  # no CUDA here is an error now, not in every block
    run_url, iteration = split_run_argument(argument)
    run_dir = RunDirectory(run_url)
    run = run_dir.read_config()
    if run is None:
        raise UserError(f"--model {argument}: neither an .onnx file nor a run directory (no run.json in {run_url})")
    iteration = run_dir.choose_checkpoint(iteration)
    spec = dataclasses.replace(run_predictor_spec(run_url, iteration, device), threads=threads)
    checkpoints.read(spec.weights)  # a damaged checkpoint is an error now, not in every block
    dataset = run.datasplit.train[0]
    try:
        voxel_size = tuple(open_volume(dataset.raw).voxel_size)
    except UserError as e:
        log.warning("cannot check the input's voxel size against the training data's: %s", e)
        voxel_size = None
    return ResolvedModel(spec, dataset.normalisation, voxel_size)
