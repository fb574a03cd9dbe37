"""alfine-postprocess-block: per-block segmentation with block-unique ids."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, OutputOptions, flag, flags, run

DESCRIPTION = """Turn predictions into a segmentation block by block (threshold, argmax, connected_components,
watershed, mutex_watershed, agglomerate, or your own package.module:function or
path/file.py:function). Ids are unique across blocks; alfine-relabel then joins the objects
that cross block faces.

A user's function is called as function(prediction, **params) with the block's prediction
(float, [C, *spatial], with its context) and returns instance labels (0 = background) of the
spatial shape; it knows nothing about blocks.

Ids: block id x voxels per block + local id (uint64), so blocks need no coordination. The
output's attribute alfine_postprocess records how alfine-relabel joins objects across block
faces: connected_components (and anything run without --context) by adjacency of nonzero
voxels under the connectivity, which gives exactly the components of the whole volume;
watershed, mutex_watershed, agglomerate (and anything with --context) by overlap: a block
keeps its own labels of the layer beyond each upper face, and relabel joins object a of the
lower block to object b of the upper one when more than half of a's voxels there are b.
A method's min_size is applied by alfine-relabel, to sizes over the whole volume. Each block
of instances also keeps a small record beside the output (OUTPUT_CONTAINER/.alfine-segments/
OUTPUT_PATH/N.npz: its ids, voxel counts and outer voxel layers), so alfine-relabel joins the
blocks without reading the volume again.
Per-class segmentations: run once per class with {"channel": K} into one array per class,
and relabel each array.

methods and their parameters (default values; --params sets them):
{methods}

examples:
  alfine-postprocess-block --input pred.zarr/affs --output seg.zarr/fragments \\
      --method connected_components --params '{"threshold": 0.5, "connectivity": 26}' --workers 4
  alfine-postprocess-block --input pred.zarr/affs --output seg.zarr/fragments --params-from model.json
  alfine-postprocess-block --input pred.zarr/dist --output seg.zarr/cells --method my_post.py:segment"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions, OutputOptions):
    input: str = flags.input_url("the predictions volume")
    output: str = flags.output_url("the per-block segmentation to write (uint64)")
    method: Optional[str] = flag(None, "post-processing method (default: the model's, with --params-from)",
                                 metavar="METHOD", names_code=True)
    allow_code: bool = flags.allow_code()
    params: Optional[dict] = flag(None, "the method's parameters as a JSON object", metavar="JSON",
                                  parse=flags.json_object)
    params_from: Optional[str] = flag(None, "model.json whose best method and parameters to use", metavar="FILE")
    context: Optional[tuple] = flag(None, "voxels each block reads beyond its write region, one number or Z,Y,X "
                                    "(default: 0 for connected_components, threshold, argmax and user functions; "
                                    "16 for watershed; max(16, 2 x the longest affinity offset) for mutex_watershed "
                                    "and agglomerate)", metavar="N", parse=flags.ints)
    block_shape: Optional[tuple] = flags.block_shape(
        help="the blocks' write size in voxels (default: the output's chunk shape, or --shards, doubled along its "
             "shortest axis while it stays within 2^21 voxels, e.g. 128,128,128 from 64^3 chunks, and no longer "
             "than the region along an axis; or, where the region is not whole blocks of that, another shape "
             "within 2^21 voxels that pads its edge blocks much less: of whole chunks, e.g. 64,64,192 for 161^3, "
             "or for instance labels, whose chunks are the blocks, of whole 8s, e.g. 80,160,160 for 160^3; an "
             "output that a run began keeps the blocks it records; memory per worker grows with it)")
    chunk_shape: Optional[tuple] = flags.chunk_shape(help="chunk size of the output in voxels (default: the input's; "
                                                     "for instance labels in default blocks, the block shape: "
                                                     "written and read a block at a time)", default=None)
    compression: Optional[str] = flags.compression(
        help="compression of the output (default: lz4 for instance labels, the fragments alfine-relabel reads once "
             "and rewrites: about 4x faster to write than zstd, files about 3x larger; zstd for class maps and masks)",
        default=None)


def description() -> str:
    """The help text, with every method's parameters and defaults from the library."""
    from alfine.jobs.postprocess import methods_help

    return DESCRIPTION.replace("{methods}", methods_help())


def body(options: Options) -> dict:
    from alfine.jobs.postprocess import postprocess_blocks

    return postprocess_blocks(options.input, options.output, method=options.method, params=options.params,
                              params_from=options.params_from, context=options.context, request=options.request(),
                              storage=options.storage())


def main(argv=None) -> int:
    return run(Options, body, description, argv)
