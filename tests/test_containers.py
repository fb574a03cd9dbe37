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
            installs = [part for part in argument.split("&&") if "pip install" in part]
            for requirement in re.findall(r"-[rc] (\S+)", " ".join(installs)):
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


def test_a_wheel_of_alfine_holds_every_module_and_the_compiled_one(tmp_path):
    """The images install alfine from a wheel built from the files they copy (`pip install .`), not in place: the
    wheel must hold every module of lib/alfine and tools (a package list of only the top-level packages once left
    all subpackages out) and, where a C compiler is, the compiled module."""
    import shutil
    import subprocess
    import sys
    import zipfile

    from compiler_helpers import c_compiler

    source = tmp_path / "opt-alfine"
    for kind, argument in instructions(ROOT / "containers" / "Dockerfile.slim"):
        for name in argument.split()[:-1] if kind == "COPY" else []:
            copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
            copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__", "*.so")}
                                                if copy is shutil.copytree else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "-w", str(tmp_path), str(source)], check=True, timeout=300, cwd=tmp_path)
    (wheel,) = tmp_path.glob("alfine-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"alfine/{p.relative_to(ROOT / 'lib' / 'alfine').as_posix()}"
                for p in (ROOT / "lib" / "alfine").rglob("*.py")}
    expected |= {f"alfine_tools/{p.relative_to(ROOT / 'tools').as_posix()}" for p in (ROOT / "tools").rglob("*.py")}
    assert len(expected) > 100 and not expected - names
    if c_compiler() is not None:
        for module in ("_labels", "_agglomeration"):
            assert any(re.fullmatch(rf"alfine/{module}\..*\.so", name) for name in names), module
