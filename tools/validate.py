"""alfine-validate: score a run's iterations on its validation data and pick the best."""

import dataclasses
from typing import Optional

from alfine.cli import Common, flag, flags, not_available, run

DESCRIPTION = """Predict each validation dataset of a run, sweep the task's post-processing parameters, score
every result, append the scores to RUN/validation.jsonl and store the best iteration and
parameters per metric in RUN/best.json.

example:
  alfine-validate --run runs/affs-unet --latest"""


@dataclasses.dataclass(kw_only=True)
class Options(Common):
    run: str = flag(help="the run directory", metavar="DIR")
    iteration: Optional[int] = flag(None, "validate this checkpoint iteration", metavar="N", parse=int)
    all: bool = flag(False, "validate every checkpoint not validated yet")
    latest: bool = flag(False, "validate the latest checkpoint")
    device: str = flags.device()
    workers: int = flags.workers()


def main(argv=None) -> int:
    return run(Options, not_available("alfine-validate", 5), DESCRIPTION, argv)
