"""alfine-validate: score a run's iterations on its validation data and pick the best."""

import dataclasses
from typing import Optional

from alfine.cli import Common, flag, flags, run

DESCRIPTION = """Predict each validation dataset of a run, sweep the task's post-processing parameters, score
every result, append the scores to RUN/validation.jsonl and store the best iteration and
parameters per metric in RUN/best.json.

example:
  alfine-validate --run runs/affs-unet --latest"""


@dataclasses.dataclass(kw_only=True)
class Options(Common):
    allow_code: bool = flags.allow_code()
    run: str = flag(help="the run directory", metavar="DIR")
    iteration: Optional[int] = flag(None, "validate this checkpoint iteration", metavar="N", parse=int)
    all: bool = flag(False, "validate every checkpoint not validated yet")
    latest: bool = flag(False, "validate the latest checkpoint (the default)")
    device: str = flags.device()
    workers: int = flags.workers()


def body(o: Options) -> dict:
    from alfine.jobs.validate import validate

    if sum([o.iteration is not None, o.all, o.latest]) > 1:
        from alfine.errors import UserError

        raise UserError("give at most one of --iteration N, --all, --latest (default: --latest)")
    return validate(o.run, iteration=o.iteration, every=o.all, device=o.device, workers=o.workers)


def main(argv=None) -> int:
    return run(Options, body, DESCRIPTION, argv)
