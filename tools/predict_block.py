"""alfine-predict-block: seam-free blockwise inference with an ONNX model or a run's checkpoint."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, OutputOptions, flag, flags, run

DESCRIPTION = """Predict a volume block by block; each block reads its region grown by the model's context, so
the result equals predicting the whole volume at once. With --block-id it runs one block (a job
array's unit); otherwise the whole --roi with --workers on daisy, resuming finished blocks.

The model is an ONNX file from alfine-export-model (run by onnxruntime; no torch needed) or a run
directory RUN (latest checkpoint), RUN@N or RUN@best (run by torch). Its normalisation and voxel
size come with it; an input of another voxel size is refused. A fixed ONNX graph writes blocks of
its output shape; a dynamic graph or a checkpoint writes --block-shape (output voxels), or the
largest block whose activations fit --memory, or its training shape. --output-dtype uint8|uint16
stores value = stored * alfine_scale + alfine_offset (attributes), undone by every alfine reader.

examples:
  alfine-predict-block --model model.onnx --input data.zarr/raw --output pred.zarr/affs --workers 4
  alfine-predict-block --model runs/affs-unet@best --input data.zarr/raw --output pred.zarr/affs --device cuda"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions, OutputOptions):
    model: str = flag(help="model.onnx, or a run directory RUN[@ITERATION|@best]", metavar="MODEL")
    input: str = flags.input_url("the raw volume")
    output: str = flags.output_url("the predictions volume to write")
    device: str = flags.device()
    allow_code: bool = flags.allow_code()
    memory: Optional[str] = flag(None, "memory budget that sizes blocks for dynamic models, e.g. 8GB", metavar="SIZE")
    output_dtype: str = flag("float32", "stored type of the predictions (uint8/uint16: quantised, bounded outputs)",
                             choices=["float32", "uint8", "uint16"])
    chunk_shape: Optional[tuple] = flags.chunk_shape("chunk size of the predictions in voxels, dividing the block "
                                                     "(default: one block's output)", default=None)


def body(options: Options) -> dict:
    from alfine.jobs.predict import predict_blocks

    return predict_blocks(options.model, options.input, options.output, device=options.device,
                          memory=options.memory, output_dtype=options.output_dtype, request=options.request(),
                          storage=options.storage())


def main(argv=None) -> int:
    return run(Options, body, DESCRIPTION, argv)
