"""alfine-evaluate: score a segmentation or prediction against the truth."""

import dataclasses
from typing import Optional

from alfine.cli import Common, flag, flags, not_available, run

DESCRIPTION = """Score a segmentation (or semantic prediction) against ground truth with the task's evaluator:
VOI split/merge, adapted Rand, F1, IoU, Dice and detection scores, inside the labelled mask.

example:
  alfine-evaluate --truth data.zarr/labels --prediction seg.zarr/seg --mask data.zarr/mask"""


@dataclasses.dataclass(kw_only=True)
class Options(Common):
    truth: str = flags.input_url("the ground-truth labels")
    prediction: str = flags.input_url("the segmentation or prediction to score")
    mask: Optional[str] = flag(None, "volume that is non-zero where the truth is known", metavar="URL")
    task: Optional[str] = flag(None, "task config whose evaluator to use (default: instance metrics)", metavar="FILE")
    roi: Optional[object] = flags.region()


def main(argv=None) -> int:
    return run(Options, not_available("alfine-evaluate", 3), DESCRIPTION, argv)
