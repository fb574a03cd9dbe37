"""alfine-make-targets: a task's training targets (and weights) from a labels volume."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, OutputOptions, flag, flags, run

DESCRIPTION = """Compute the targets a task trains on (affinities, LSDs, distances, one-hot classes, ...) from a
labels volume, block by block, and write them as a float32 volume (channels first, their names in
the attribute channel_names). Each block reads the context its targets need, so the result equals
computing the whole volume at once. Targets that depend on labels outside the volume or outside
--mask are unknown: --weights writes 1 where a target is known, 0 where not (the trainer balances
classes per crop on top of it).

task kinds: binary, semantic, distance, inner_distance, hot_distance, affinities (with "lsds": true)

examples:
  echo '{"kind": "affinities", "neighborhood": [[1,0,0],[0,1,0],[0,0,1]], "lsds": true}' > affs.json
  alfine-make-targets --labels data.zarr/labels --task affs.json --output data.zarr/targets --workers 2
  alfine-make-targets --labels data.zarr/classes --task distance.json --output t.zarr/dist --list-blocks"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions, OutputOptions):
    labels: str = flags.input_url("the labels volume (instance ids or classes)")
    task: str = flag(help="the task config (JSON with a \"kind\")", metavar="FILE")
    output: str = flags.output_url("the targets volume to write (float32, channels first)")
    weights: Optional[str] = flag(None, "also write where each target is known (uint8 0/1, same channels)",
                                  metavar="URL")
    mask: Optional[str] = flag(None, "volume that is non-zero where labels are known", metavar="URL")


def body(options: Options) -> dict:
    from alfine.jobs.targets import make_targets

    return make_targets(options.labels, options.task, options.output, weights=options.weights, mask=options.mask,
                        request=options.request(), storage=options.storage())


def main(argv=None) -> int:
    return run(Options, body, DESCRIPTION, argv)
