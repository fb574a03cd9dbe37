"""alfine-export-model: a run's model as ONNX, with everything inference needs."""

import dataclasses
from typing import Optional

from alfine.cli import Common, flag, flags, not_available, run

DESCRIPTION = """Export a run's model at an iteration (or the best one for a criterion) to a single ONNX file
with its metadata (shapes, context, voxel sizes, channels, normalisation, post-processing and
its best parameters) inside it and as model.json beside it; checked against torch.

example:
  alfine-export-model --run runs/affs-unet --iteration best --criterion voi --output model.onnx"""


@dataclasses.dataclass(kw_only=True)
class Options(Common):
    run: str = flag(help="the run directory", metavar="DIR")
    iteration: str = flag("best", "checkpoint iteration, or 'best' (by --criterion)", metavar="N|best")
    criterion: Optional[str] = flag(None, "validation metric that picks 'best' (default: the task's main one)",
                                    metavar="NAME")
    output: str = flags.output_url("the ONNX file to write (model.json is written beside it)", default="model.onnx")
    block_shape: Optional[tuple] = flags.block_shape("fixed input block shape (default: the training input shape)")
    dynamic: bool = flag(False, "dynamic spatial axes instead of a fixed block shape")
    tolerance: float = flag(1e-4, "largest allowed difference between onnxruntime and torch outputs", parse=float)


def main(argv=None) -> int:
    return run(Options, not_available("alfine-export-model", 6), DESCRIPTION, argv)
