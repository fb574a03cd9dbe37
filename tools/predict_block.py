"""alfine-predict-block: seam-free blockwise inference with an ONNX model or a run's checkpoint."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, OutputOptions, flag, flags, not_available, run

DESCRIPTION = """Predict a volume block by block; each block reads its region grown by the model's context, so
the result equals predicting the whole volume at once. With --block-id it runs one block (a job
array's unit); otherwise the whole --roi with --workers on daisy, resuming finished blocks.

examples:
  alfine-predict-block --model model.onnx --input data.zarr/raw --output pred.zarr/affs --workers 4
  alfine-predict-block --model runs/affs-unet@best --input data.zarr/raw --output pred.zarr/affs --device cuda"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions, OutputOptions):
    model: str = flag(help="model.onnx, or a run directory RUN[@ITERATION|@best]", metavar="MODEL")
    input: str = flags.input_url("the raw volume")
    output: str = flags.output_url("the predictions volume to write")
    device: str = flags.device()
    memory: Optional[str] = flag(None, "memory budget that sizes blocks for dynamic models, e.g. 8GB", metavar="SIZE")


def main(argv=None) -> int:
    return run(Options, not_available("alfine-predict-block", 6), DESCRIPTION, argv)
