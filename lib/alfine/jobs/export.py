"""export-model: a run's model at an iteration (or validation's best) as one ONNX file with its metadata.

The metadata (inside the graph and as ``model.json`` beside it) holds everything inference needs: shapes,
context, voxel sizes, channel names, the raw normalisation, the task and validation's best post-processing.
Before anything is written, onnxruntime and torch predict one random input; a difference above the tolerance
refuses the export.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence

from ..configs import to_dict
from ..errors import UserError
from ..files import write_whole
from ..inference.export import OPSET, max_difference, onnx_bytes
from ..inference.layout import output_voxel_size
from ..inference.metadata import FORMAT, sidecar_url
from ..inference.predict import run_predictor_spec
from ..runs import RunDirectory, best_for
from ..volumes import open_volume

log = logging.getLogger(__name__)


def choose_iteration(run_url: str, iteration: str | int, criterion: str | None) -> tuple[int, dict | None]:
    """``(iteration, best entry or None)``: a checkpoint number as given, or for ``"best"`` the entry of
    :func:`alfine.validation.selection.best_for` (a :class:`UserError` if the run was not validated)."""
    if str(iteration) == "best":
        best = best_for(run_url, criterion)
        return int(best["iteration"]), best
    return RunDirectory(run_url).choose_checkpoint(iteration), None


def postprocessing_of(task, best: dict | None) -> dict | None:
    """The post-processing a model carries: validation's best, else the task's first method with null params."""
    if best is not None:
        return {"method": best["method"], "params": best["params"], "channels": best.get("channels"),
                "criterion": best["metric"], "scores": best.get("scores", {})}
    methods = task.postprocessing()
    if not methods:
        return None
    first = methods[0]
    channels = None if first.channels == slice(None) else [first.channels.start or 0, first.channels.stop]
    return {"method": first.method, "params": None, "channels": channels, "criterion": None, "scores": {}}


def _voxel_sizes(raw_url: str, architecture) -> tuple[list[int] | None, list[int] | None]:
    """The training raw's voxel size and the output's, or ``(None, None)`` where raw cannot be opened."""
    try:
        voxel_size = open_volume(raw_url).voxel_size
    except UserError as e:
        log.warning("no voxel size in the metadata: %s", e)
        return None, None
    return list(voxel_size), list(output_voxel_size(architecture, voxel_size))


def _normalisation(dataset) -> dict:
    """The run's raw normalisation as a config dict; a percentile one measured on the training raw when it opens."""
    from ..datasplits import Percentile

    normalisation = dataset.normalisation
    if isinstance(normalisation, Percentile):
        try:
            normalisation = normalisation.measure(open_volume(dataset.raw))
        except UserError as e:
            log.warning("percentile normalisation left to be measured on each input: %s", e)
    return to_dict(normalisation)


def export_model(run_url: str, iteration: str | int, output: str, criterion: str | None = None,
                 input_shape: Sequence[int] | None = None, dynamic: bool = False, tolerance: float = 1e-4) -> dict:
    """Export checkpoint ``iteration`` (a number, or ``"best"`` by ``criterion``) of the run at ``run_url``
    to the ONNX file ``output`` and ``model.json`` beside it; a summary.

    ``input_shape`` is the graph's input shape (default the architecture's training input shape).
    Nothing is written when onnxruntime and torch differ by more than ``tolerance`` on a random input
    (a :class:`UserError` giving the difference).
    """
    import torch

    number, best = choose_iteration(run_url, iteration, criterion)
    spec = run_predictor_spec(run_url, number, "cpu")
    run = RunDirectory(run_url).config()
    architecture, task = run.architecture, run.task
    input_shape = tuple(int(s) for s in (input_shape or architecture.input_shape))
    architecture.check_input_shape(input_shape)
    predictor = spec.build()
    model = predictor.model.cpu().eval()
    dataset = run.datasplit.train[0]
    input_voxel, output_voxel = _voxel_sizes(dataset.raw, architecture)
    metadata = {
        "format": FORMAT, "run": run_url, "iteration": number, "criterion": best["metric"] if best else None,
        "architecture": to_dict(architecture), "task": to_dict(task), "input_shape": list(input_shape),
        "output_shape": list(architecture.output_shape(input_shape)), "dynamic": bool(dynamic),
        "context": list(architecture.context()), "input_voxel_size": input_voxel,
        "output_voxel_size": output_voxel, "channel_names": task.channel_names(),
        "normalisation": _normalisation(dataset), "postprocessing": postprocessing_of(task, best),
        "weights_sha256": _sha256(spec.weights), "opset": OPSET,
    }
    generator = torch.Generator().manual_seed(0)
    example = torch.rand((1, architecture.fmaps_in, *input_shape), generator=generator) * 2 - 1
    log.info("exporting %s iteration %d with input %s%s", run_url, number, input_shape, " (dynamic)" if dynamic else "")
    data = onnx_bytes(model, example, dynamic, metadata)
    difference = max_difference(data, model, example)
    if not difference <= tolerance:
        raise UserError(f"onnxruntime and torch outputs differ by up to {difference:.3g}, more than --tolerance "
                        f"{tolerance:g}; nothing written to {output}")
    text = json.dumps(metadata, indent=2) + "\n"
    write_whole(output, data)
    write_whole(sidecar_url(output), text.encode())
    return {"output": output, "metadata": sidecar_url(output), "run": run_url, "iteration": number,
            "criterion": metadata["criterion"], "input_shape": metadata["input_shape"],
            "output_shape": metadata["output_shape"], "dynamic": bool(dynamic), "max_difference": difference,
            "bytes": len(data), "postprocessing": metadata["postprocessing"]}


def _sha256(url: str) -> str:
    import fsspec

    digest = hashlib.sha256()
    with fsspec.open(url, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


