"""alfine-make-targets: a task's training targets (and weights) from a labels volume."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, OutputOptions, flag, flags, not_available, run

DESCRIPTION = """Compute the targets a task trains on (affinities, distances, one-hot, LSDs, ...) and their
weights from a labels volume, block by block, and write them as a volume.

example:
  alfine-make-targets --labels data.zarr/labels --task affinities.json --output data.zarr/targets"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions, OutputOptions):
    labels: str = flags.input_url("the labels volume (instance ids or classes)")
    task: str = flag(help="the task config (JSON with a \"kind\")", metavar="FILE")
    output: str = flags.output_url("the targets volume to write (weights go to OUTPUT_weights)")
    mask: Optional[str] = flag(None, "volume that is non-zero where labels are known", metavar="URL")


def main(argv=None) -> int:
    return run(Options, not_available("alfine-make-targets", 3), DESCRIPTION, argv)
