"""alfine-export-model: a run's model as ONNX, with everything inference needs."""

import dataclasses
from typing import Optional

from alfine.cli import Common, flag, flags, run

DESCRIPTION = """Export a run's model at an iteration (or the best one for a criterion) to a single ONNX file
with its metadata (shapes, context, voxel sizes, channels, normalisation, post-processing and
its best parameters) inside it and as model.json beside it; checked against torch.

The graph includes the task's output activation and takes one block of --input-shape voxels
(default the training input shape), or any valid size with --dynamic. Before writing,
onnxruntime and torch predict one random input; a difference above --tolerance writes nothing
(exit 2). --iteration best reads the run's best.json (run alfine-validate first).

example:
  alfine-export-model --run runs/affs-unet --iteration best --criterion voi --output model.onnx"""


@dataclasses.dataclass(kw_only=True)
class Options(Common):
    allow_code: bool = flags.allow_code()
    run: str = flag(help="the run directory", metavar="DIR")
    iteration: str = flag("best", "checkpoint iteration, or 'best' (by --criterion)", metavar="N|best")
    criterion: Optional[str] = flag(None, "validation metric that picks 'best' (default: the task's main one)",
                                    metavar="NAME")
    output: str = flags.output_url("the ONNX file to write (model.json is written beside it)", default="model.onnx")
    input_shape: Optional[tuple] = flag(None, "the fixed network input of the graph in voxels (default: the training "
                                        "input shape)", metavar="Z,Y,X", parse=flags.ints)
    dynamic: bool = flag(False, "dynamic spatial axes instead of a fixed block shape")
    tolerance: float = flag(1e-4, "largest allowed difference between onnxruntime and torch outputs", parse=float)


def body(options: Options) -> dict:
    from alfine.jobs.export import export_model

    return export_model(options.run, options.iteration, options.output, criterion=options.criterion,
                        input_shape=options.input_shape, dynamic=options.dynamic, tolerance=options.tolerance)


def main(argv=None) -> int:
    return run(Options, body, DESCRIPTION, argv)
