"""alfine-evaluate: score a segmentation or prediction against the truth."""

import dataclasses
from typing import Optional

from alfine.cli import Common, flag, flags, run

DESCRIPTION = """Score a segmentation against ground truth, block by block (any volume size), inside --mask.

instance (default): variation of information (voi_split, voi_merge, voi = split + merge, bits),
  adapted_rand_error with rand_precision/recall, false_splits/false_merges (objects overlapping
  significantly more than one partner), object matching at IoU > 0.5 (match_precision/recall/f1).
  Truth id 0 is unlabelled and not counted (as in CREMI); prediction id 0 is an ordinary segment.
semantic (per class id): f1 (= Dice), jaccard (IoU), precision, recall, false_positive_rate,
  false_negative_rate, optionally within a boundary --tolerance, and --hausdorff distances.
The summary says for each metric whether higher is better.

examples:
  alfine-evaluate --truth data.zarr/labels --prediction seg.zarr/segmentation --mask data.zarr/mask
  alfine-evaluate --kind semantic --classes 1,2 --truth data.zarr/classes --prediction pred.zarr/classes"""


@dataclasses.dataclass(kw_only=True)
class Options(Common):
    truth: str = flags.input_url("the ground-truth labels")
    prediction: str = flags.input_url("the segmentation or prediction to score")
    mask: Optional[str] = flag(None, "volume that is non-zero where the truth is known", metavar="URL")
    kind: Optional[str] = flag(None, "instance or semantic (default: the --task's, else instance)",
                               choices=["instance", "semantic"])
    task: Optional[str] = flag(None, "task config whose evaluator and classes to use", metavar="FILE")
    classes: Optional[tuple] = flag(None, "semantic: the class ids to score", metavar="ID,ID", parse=flags.ints)
    tolerance: float = flag(0.0, "semantic: boundary tolerance in world units", metavar="W", parse=float)
    hausdorff: bool = flag(False, "semantic: also the Hausdorff distances (needs the region in memory)")
    metrics: Optional[list] = flag(None, "report only these metrics", metavar="NAME,NAME",
                                   parse=lambda text: [m.strip() for m in text.split(",")] if isinstance(text, str)
                                   else list(text))
    roi: Optional[object] = flags.region()


def body(options: Options) -> dict:
    from alfine.jobs.evaluate import evaluate

    return evaluate(options.truth, options.prediction, mask_url=options.mask, kind=options.kind, task=options.task,
                    classes=options.classes, tolerance=options.tolerance, with_hausdorff=options.hausdorff,
                    metrics=options.metrics, roi=options.roi)


def main(argv=None) -> int:
    return run(Options, body, DESCRIPTION, argv)
