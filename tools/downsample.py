"""alfine-downsample: coarser scale levels (a pyramid) of an image alfine wrote, for viewers."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, flag, flags, run

DESCRIPTION = """Add coarser scale levels s1, s2, ... to an OME-NGFF image that alfine wrote (any output volume:
raw, predictions, segmentations), block by block, and list them in its multiscales metadata so
neuroglancer, napari and OME tools open it at any zoom. Level k is made from level k-1: the mean
of the voxels it covers for raw data and predictions, their most frequent id for segmentations
(images marked image-label). By default each level halves the finer axes of an anisotropic
volume (all axes once isotropic), until a level fits in one chunk.

Levels are made one after the other, each a blockwise run of its own (done markers beside it:
CONTAINER/.alfine-blocks/IMAGE/sK). --block-id and --list-blocks take one --level K, so a job
array makes one level; run the arrays of levels 1, 2, ... in order.

examples:
  alfine-downsample --input seg.zarr/objects --workers 4 --root
  alfine-downsample --input pred.zarr/affs --levels 3 --factor 1,2,2
  alfine-downsample --input pred.zarr/affs --level 1 --block-id 0"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions):
    input: str = flags.input_url("the image to add levels to (an alfine output, e.g. seg.zarr/objects)")
    levels: Optional[int] = flag(None, "how many coarser levels (default: until one fits in a chunk)", metavar="N",
                                 parse=int)
    level: Optional[int] = flag(None, "make only level K (from level K-1, which must exist)", metavar="K",
                                parse=int)
    factor: Optional[tuple] = flag(None, "per-axis factor of every level, e.g. 1,2,2 (default: 2 along the axes "
                                   "finer than the coarsest, all axes when isotropic)", metavar="Z,Y,X",
                                   parse=flags.positive_ints)
    root: bool = flag(False, "also describe this image on its container's root, so that a viewer opening the "
                      "container (seg.zarr) opens this image")


    def report_status(self) -> dict:
        """--status: the blocks done of each level the image already has (s1, s2, ...)."""
        from alfine.cli.runner import UsageError

        if self.block_id is not None or self.list_blocks:
            raise UsageError("--status reports on every level: it takes no --block-id or --list-blocks")
        from alfine.jobs.downsample import status

        return status(self.input)


def body(options: Options) -> dict:
    from alfine.jobs.downsample import downsample

    return downsample(options.input, levels=options.levels, level=options.level, factor=options.factor,
                      root=options.root, request=options.request())


def main(argv=None) -> int:
    return run(Options, body, DESCRIPTION, argv)
