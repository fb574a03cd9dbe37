"""Write the demo's run config: examples/configs/run.json (network, task, trainer) on the demo's volumes.

    python3 examples/demo_run_config.py > FOLDER/run.json

The datasplit trains on FOLDER/data.zarr and validates on FOLDER/validate.zarr (raw, labels, mask),
written as paths relative to FOLDER/run.json. Environment (all optional): DEMO_ITERATIONS
(iterations), INTERVAL (iterations between checkpoints and validations; snapshots at half of it),
ARCHITECTURE (a JSON architecture config replacing the demo's). examples/local.sh and
examples/slurm.sh both use it, so with the same settings they train the same run.
"""

import json
import os
import sys
from pathlib import Path

CONFIGS = Path(__file__).parent / "configs"
run = json.loads((CONFIGS / "run.json").read_text())
for part in ("architecture", "task", "trainer"):
    if isinstance(run[part], str):  # a file of the config store, relative to run.json
        run[part] = json.loads((CONFIGS / run[part]).read_text())


def dataset(container: str) -> dict:
    return {name: f"{container}/{name}" for name in ("raw", "labels", "mask")}


run["name"] = "demo-affinities"
run["datasplit"] = {"train": [dataset("data.zarr")], "validate": [dataset("validate.zarr")]}
if os.environ.get("DEMO_ITERATIONS"):
    run["iterations"] = int(os.environ["DEMO_ITERATIONS"])
if os.environ.get("INTERVAL"):
    interval = int(os.environ["INTERVAL"])
    run.update(checkpoint_interval=interval, validation_interval=interval, snapshot_interval=(interval + 1) // 2)
if os.environ.get("ARCHITECTURE"):
    run["architecture"] = json.loads(os.environ["ARCHITECTURE"])
json.dump(run, sys.stdout, indent=1)
print()
