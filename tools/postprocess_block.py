"""alfine-postprocess-block: per-block segmentation with block-unique ids."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, OutputOptions, flag, flags, not_available, run

DESCRIPTION = """Turn predictions into a segmentation block by block (threshold, argmax, connected_components,
watershed, mutex_watershed, agglomerate, or your own package.module:function or
path/file.py:function). Ids are unique across blocks; alfine-relabel then joins the objects
that cross block faces.

example:
  alfine-postprocess-block --input pred.zarr/affs --output seg.zarr/fragments \\
      --method connected_components --params '{"threshold": 0.5}'"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions, OutputOptions):
    input: str = flags.input_url("the predictions volume")
    output: str = flags.output_url("the per-block segmentation to write (uint64)")
    method: Optional[str] = flag(None, "post-processing method (default: the model's, with --params-from)",
                                 metavar="METHOD")
    params: Optional[dict] = flag(None, "the method's parameters as a JSON object", metavar="JSON",
                                  parse=flags.json_object)
    params_from: Optional[str] = flag(None, "model.json whose best method and parameters to use", metavar="FILE")


def main(argv=None) -> int:
    return run(Options, not_available("alfine-postprocess-block", 7), DESCRIPTION, argv)
