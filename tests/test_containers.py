"""The container recipes refer to files that exist, install what the slim set promises, and run as non-root.

(No container engine runs on CI machines; tests/test_slim_install.py installs the slim image's
requirements into a fresh virtual environment and runs the torch-free pipeline there.)
"""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "containers").glob("Dockerfile.*"))


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split()[0].upper(), line.partition(" ")[2]) for line in lines]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_copy_existing_files_and_run_alfine_as_a_user(dockerfile):
    steps = instructions(dockerfile)
    for kind, argument in steps:
        if kind == "COPY":
            for source in argument.split()[:-1]:
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
        if kind == "RUN":
            for requirement in re.findall(r"-[rc] (\S+)", argument):
                assert (ROOT / requirement).exists(), f"{dockerfile.name}: {requirement} does not exist"
    kinds = [kind for kind, _ in steps]
    user = [argument for kind, argument in steps if kind == "USER"]
    assert user and user[-1] not in ("root", "0") and kinds.index("USER") > max(
        i for i, k in enumerate(kinds) if k == "RUN")
    assert ("ENTRYPOINT", '["alfine"]') in steps
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "alfine" in scripts
    assert not any(re.search(r"AWS_|SECRET|TOKEN|PASSWORD", argument) for _, argument in steps)


def test_the_slim_set_has_no_torch_and_the_full_set_adds_it():
    slim = (ROOT / "requirements" / "slim.txt").read_text()
    names = {re.split(r"[=<>\[]", line)[0].strip().lower() for line in slim.splitlines()
             if line.strip() and not line.startswith("#")}
    assert "onnxruntime" in names and not names & {"torch", "onnx", "onnxscript", "matplotlib"}
    full = (ROOT / "containers" / "Dockerfile.full").read_text()
    assert "torch==2.13.0" in full and "requirements/torch.txt" in full


@pytest.mark.parametrize("definition", sorted((ROOT / "containers").glob("*.def")), ids=lambda p: p.name)
def test_apptainer_definitions_run_alfine(definition):
    text = definition.read_text()
    assert "Bootstrap: docker-daemon" in text and 'exec alfine "$@"' in text
