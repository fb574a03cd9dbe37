"""No stale docs: every alfine command in the README's shell blocks names a real command and real flags.

(The pipelines themselves run in tests: examples/local.sh is `make demo`, tests/test_examples.py
runs examples/s3.sh and examples/lsf.sh, tests/test_slurm.py examples/slurm.sh.)
"""

import dataclasses
import importlib
import os
import re
import shlex
from pathlib import Path

import pytest

from alfine_tools.dispatch import COMMANDS

ROOT = Path(__file__).resolve().parent.parent


def shell_blocks(text: str) -> list[str]:
    """The ```bash blocks of a markdown text, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [block.replace("\\\n", " ") for block in blocks]


def invocations(script: str) -> list[tuple[str, list[str]]]:
    """``(command, flags)`` of every ``alfine-X ...`` or ``alfine X ...`` in ``script``."""
    found = []
    script = re.sub(r"\$\{?ALFINE(_SLIM)?\}?", "alfine", script)  # the examples' ALFINE="alfine" settings
    for line in script.splitlines():
        if line.lstrip().startswith("#"):
            continue
        line = line.split(" #")[0]
        for piece in re.split(r"\||&&|;|\$\(|\)", line):
            try:
                words = shlex.split(piece)
            except ValueError:
                continue
            for i, word in enumerate(words):
                name = word.removeprefix("alfine-") if word.startswith("alfine-") else None
                if word == "alfine" and i + 1 < len(words) and not words[i + 1].startswith("-"):
                    name, i = words[i + 1], i + 1
                if name and re.fullmatch(r"[a-z-]+", name) and not name.endswith(("slim", "logs", "blocks")):
                    found.append((name, [w.split("=")[0] for w in words[i + 1:] if w.startswith("--")]))
    return found


def flags_of(command: str) -> set[str]:
    module = importlib.import_module(f"alfine_tools.{command.replace('-', '_')}")
    return {"--help"} | {"--" + f.name.replace("_", "-") for f in dataclasses.fields(module.Options)}


@pytest.mark.parametrize("document", ["README.md", "examples/local.sh", "examples/s3.sh", "examples/lsf.sh",
                                      "examples/slurm.sh"])
def test_every_documented_command_and_flag_exists(document):
    text = (ROOT / document).read_text()
    scripts = shell_blocks(text) if document.endswith(".md") else [text.replace("\\\n", " ")]
    seen = [call for script in scripts for call in invocations(script)]
    assert seen, f"no alfine commands found in {document}"
    for command, flags in seen:
        assert command in COMMANDS, f"{document}: unknown command alfine-{command}"
        unknown = sorted(set(flags) - flags_of(command))
        assert not unknown, f"{document}: alfine-{command} has no flag(s) {', '.join(unknown)}"


def test_the_check_finds_stale_flags():
    calls = invocations("alfine-relabel --input a --outptu b | jq .\nX=$(alfine predict-block --model m --list-blocks)")
    assert calls == [("relabel", ["--input", "--outptu"]), ("predict-block", ["--model", "--list-blocks"])]
    assert "--outptu" not in flags_of("relabel")


def tour_script(text: str) -> str:
    """The ```bash blocks of the README's "A short tour" section, in order, as one script."""
    section = text.split("\n## A short tour\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(shell_blocks(section))


@pytest.mark.skipif(not os.environ.get("ALFINE_TOUR"), reason="minutes of training: make tour-test runs it")
def test_the_tour_runs_as_written_from_the_repository_root(tmp_path):
    """Every command of the tour, unedited, in order, in a copy of the repository's examples/ (whose configs get
    a smaller network, two iterations and no loader workers; the repetition trains the 400 iterations its
    command line asks for, of the small network)."""
    import json
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    configs = tmp_path / "examples" / "configs"
    run = json.loads((configs / "run.json").read_text())
    run.update(iterations=2, checkpoint_interval=2, snapshot_interval=0, validation_interval=0)
    (configs / "run.json").write_text(json.dumps(run))
    (configs / "architectures" / "unet.json").write_text(json.dumps(
        {"kind": "unet", "input_shape": [28, 28, 28], "num_fmaps": 2, "downsample_factors": [[2, 2, 2]]}))
    trainer = json.loads((configs / "trainers" / "adam.json").read_text())
    (configs / "trainers" / "adam.json").write_text(json.dumps({**trainer, "num_workers": 0}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALFINE_")}
    env.update(PATH=f"{Path(sys.executable).parent}:{env['PATH']}", ALFINE_NO_PROGRESS="1")
    done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + tour_script((ROOT / "README.md").read_text())],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    evaluation = json.loads(done.stdout.strip().splitlines()[-1])
    assert evaluation["scores"]["voxels"] > 0 and evaluation["prediction"].endswith("tour/seg.zarr/objects")
    recorded = json.loads((tmp_path / "tour" / "runs" / "affinities" / "run.json").read_text())
    assert recorded["datasplit"]["train"][0]["raw"] == f"{tmp_path}/tour/train.zarr/raw"  # beside the configs' root
    assert (tmp_path / "tour" / "runs" / "affinities-r1" / "checkpoints" / "400.pt").exists()
    assert (tmp_path / "tour" / "seg.zarr" / "objects" / "s1").exists() and (tmp_path / "tour" / "model.json").exists()
