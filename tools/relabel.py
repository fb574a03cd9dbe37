"""alfine-relabel: one consistent segmentation from per-block segmentations."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, OutputOptions, flag, flags, not_available, run

DESCRIPTION = """Join objects that touch across block faces (union-find over every block's face pairs), number
them consecutively from 1, optionally drop objects smaller than --min-size, and write the
result block by block; stores the id mapping and object sizes.

example:
  alfine-relabel --input seg.zarr/fragments --output seg.zarr/segmentation --min-size 100"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions, OutputOptions):
    input: str = flags.input_url("the per-block segmentation (from alfine-postprocess-block)")
    output: str = flags.output_url("the relabelled segmentation to write (may equal --input)")
    min_size: Optional[float] = flag(None, "drop objects smaller than this many voxels, counted over the whole volume",
                                     metavar="N", parse=float)


def main(argv=None) -> int:
    return run(Options, not_available("alfine-relabel", 7), DESCRIPTION, argv)
