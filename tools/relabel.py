"""alfine-relabel: one consistent segmentation from per-block segmentations."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, OutputOptions, flag, flags, run

DESCRIPTION = """Join objects that touch across block faces (union-find over every block's face pairs), number
them consecutively from 1, optionally drop objects smaller than --min-size, and write the
result block by block; stores the id mapping and object sizes.

Three steps, each resumable: (1) faces: every block records its ids, sizes and the pairs its
upper faces join (by the rule alfine-postprocess-block recorded; adjacency with face
connectivity for other inputs), from the small per-block records alfine-postprocess-block
keeps (no volume data read; up to 256 blocks in this process, more on the workers), or by
reading each block grown by one voxel for other inputs; (2) numbering, in one process;
(3) write. The blocks are those of alfine-postprocess-block. Records: OUTPUT_CONTAINER/.alfine-relabel/OUTPUT_PATH
(mapping/N.npz: ids -> new_ids of block N; objects.npz: sizes[new_id - 1]; objects.json).
With --block-id N: block N of step 1 until every block has done step 1, then block N of
step 3 (so a job array run twice relabels). The output may be the input (in place): each block
keeps its old ids (records: originals/N.npz) until its new ones are written, so a killed in-place
run re-run with the same command is still correct.

example:
  alfine-relabel --input seg.zarr/fragments --output seg.zarr/segmentation --min-size 100"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions, OutputOptions):
    input: str = flags.input_url("the per-block segmentation (from alfine-postprocess-block)")
    output: str = flags.output_url("the relabelled segmentation to write (may equal --input)")
    min_size: Optional[float] = flag(None, "drop objects smaller than this many voxels, counted over the whole volume "
                                     "(default: the min_size given to alfine-postprocess-block, else 0)",
                                     metavar="N", parse=float)
    chunk_shape: Optional[tuple] = flags.chunk_shape(help="chunk size of the output in voxels (default: the block "
                                                     "shape)", default=None)

    def status_steps(self) -> dict:
        from alfine.jobs.relabel import step_markers

        return step_markers(self.output)


def body(options: Options) -> dict:
    from alfine.jobs.relabel import relabel

    return relabel(options.input, options.output, min_size=options.min_size, request=options.request(),
                   storage=options.storage())


def main(argv=None) -> int:
    return run(Options, body, DESCRIPTION, argv)
