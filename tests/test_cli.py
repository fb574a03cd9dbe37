"""The command-line conventions: help for every command, flag precedence, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alfine.cli import UsageError, parse_options
from alfine_tools.dispatch import COMMANDS

BIN = Path(sys.executable).parent
DESIGN_FLAGS = {
    "predict-block": ["--model", "--input", "--output", "--roi", "--block-id", "--list-blocks", "--workers",
                      "--launcher", "--device", "--block-shape"],
    "postprocess-block": ["--input", "--output", "--method", "--params", "--params-from", "--block-id", "--workers"],
    "relabel": ["--input", "--output", "--min-size", "--workers", "--launcher"],
    "export-model": ["--run", "--iteration", "--criterion", "--output", "--dynamic"],
    "validate": ["--run", "--iteration", "--all", "--latest"],
    "synthesize": ["--output", "--shape", "--voxel-size", "--offset", "--seed", "--zarr-format", "--shards"],
}


def _run(*args, env=None, cwd=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALFINE_")}
    environment.update(env or {})
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, env=environment, cwd=cwd,
                          timeout=120)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = _run(f"alfine-{command}", "--help")
    assert result.returncode == 0, result.stderr
    for flag in ["--config", "--debug", "--no-progress", *DESIGN_FLAGS.get(command, [])]:
        assert flag in result.stdout, f"alfine-{command} --help lacks {flag}"
    assert "ALFINE_<FLAG>" in result.stdout and "Exit codes" in result.stdout
    assert "--version" in result.stdout


def test_every_command_and_alfine_print_the_version():
    from alfine import __version__

    for line, expected in ((["alfine", "--version"], f"alfine {__version__}"),
                           (["alfine", "relabel", "--version"], f"alfine-relabel (alfine) {__version__}"),
                           (["alfine-evaluate", "--version"], f"alfine-evaluate (alfine) {__version__}")):
        result = _run(*line)
        assert result.returncode == 0 and result.stdout.strip() == expected, (line, result.stdout, result.stderr)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_imports_nothing_heavy(command):
    """`--help` is instant: a tool module imports neither numpy, zarr, daisy nor torch."""
    module = "alfine_tools." + command.replace("-", "_")
    heavy = ("numpy", "zarr", "torch", "daisy", "scipy", "funlib")
    code = f"import sys, {module}; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _options(argv, env=None, monkeypatch=None):
    from alfine_tools.synthesize import Options

    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    return parse_options(Options, argv, "alfine-synthesize", "")


def test_precedence_default_environment_config_command_line(tmp_path, monkeypatch):
    assert _options([]).workers == 1
    assert _options([], {"ALFINE_WORKERS": "3"}, monkeypatch).workers == 3
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"workers": 5, "voxel-size": [4, 4, 4], "shape": "32,32,32", "no_progress": True}))
    from_config = _options(["--config", str(config)], monkeypatch=monkeypatch)
    assert (from_config.workers, from_config.voxel_size, from_config.shape) == (5, (4, 4, 4), (32, 32, 32))
    assert from_config.no_progress is True
    assert _options(["--config", str(config), "--workers", "7"], monkeypatch=monkeypatch).workers == 7
    monkeypatch.setenv("ALFINE_CONFIG", str(config))
    assert _options([]).workers == 5


def test_a_callable_description_is_written_only_for_help():
    """Parsing arguments never calls the description (a registry's help); --help calls it once and prints it."""
    from alfine.cli.runner import build_parser
    from alfine_tools.synthesize import Options

    calls = []

    def description():
        calls.append(1)
        return "text written on demand"

    parser, _ = build_parser(Options, "alfine-synthesize", description)
    assert parser.parse_args(["--workers", "2"]).workers == 2 and calls == []
    assert "text written on demand" in parser.format_help() and calls == [1]
    assert "text written on demand" in parser.format_help() and calls == [1]


def test_environment_values_are_parsed_and_checked(monkeypatch):
    options = _options([], {"ALFINE_SHAPE": "16,32,64", "ALFINE_NO_PROGRESS": "yes"}, monkeypatch)
    assert options.shape == (16, 32, 64) and options.no_progress is True
    monkeypatch.setenv("ALFINE_NO_PROGRESS", "maybe")
    with pytest.raises(UsageError, match="ALFINE_NO_PROGRESS: expected true or false"):
        _options([])
    monkeypatch.delenv("ALFINE_NO_PROGRESS")
    monkeypatch.setenv("ALFINE_ZARR_FORMAT", "4")
    with pytest.raises(UsageError, match="ALFINE_ZARR_FORMAT: 4 is not one of 2, 3"):
        _options([])


@pytest.mark.parametrize(
    "args, config, message",
    [
        (["--shape", "a,b"], None, "error: argument --shape: expected comma-separated integers like 8,4,4, got 'a,b'"),
        (["--voxel-size", "0,4,4"], None, "error: argument --voxel-size: every entry must be positive, got '0,4,4'"),
        ([], {"shape": [1, 2, 3], "colour": "red"}, "c.json: colour: unknown key; known keys are"),
        ([], {"seed": "x"}, "c.json: seed: invalid literal for int()"),
        ([], {"noise": [1]}, "c.json: noise: float() argument must be"),
        ([], {"shape": "0,8,8"}, "c.json: shape: every entry must be positive, got '0,8,8'"),
        ([], "{\"seed\": 1,}", "c.json: invalid JSON at line 1 column 12"),
        ([], [1, 2], "c.json: expected a JSON object of flags"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, config, message):
    if config is not None:
        path = tmp_path / "c.json"
        path.write_text(config if isinstance(config, str) else json.dumps(config))
        args = [*args, "--config", str(path)]
    result = _run("alfine-synthesize", "--output", str(tmp_path / "out.zarr"), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "out.zarr").exists()


def test_missing_config_file_is_exit_2(tmp_path):
    result = _run("alfine-synthesize", "--config", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert result.stderr.strip().endswith(f"error: {tmp_path / 'nope.json'}: no such file")


def test_the_alfine_command_lists_and_dispatches_every_command(tmp_path):
    listing = _run("alfine", cwd=tmp_path)
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines() if line.startswith("  ")] == COMMANDS
    through = _run("alfine", "evaluate", "--help", cwd=tmp_path)
    direct = _run("alfine-evaluate", "--help", cwd=tmp_path)
    assert through.returncode == direct.returncode == 0 and through.stdout == direct.stdout
    unknown = _run("alfine", "segment-everything", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown command 'segment-everything'" in unknown.stderr


def test_torch_commands_say_so_where_torch_is_missing(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")  # as in the slim image
    result = _run("alfine-train", "--run-config", "run.json", "--run", "r", env={"PYTHONPATH": str(tmp_path)},
                  cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("alfine-train: error: this needs torch, which is not installed here (the slim "
                                     "image has no torch: use the full image, or an ONNX model for inference)")


def test_s3_reads_are_one_request_unless_the_user_configured_s3fs(monkeypatch):
    """The commands make s3fs read an object with one GET (no HEAD for its size first), as fsspec's default
    for this process and its workers; a user's own FSSPEC_S3* setting is left as it is."""
    import fsspec.config

    from alfine.cli import runner

    for key in [k for k in os.environ if k.startswith("FSSPEC_S3")]:
        monkeypatch.delenv(key)
    monkeypatch.setitem(fsspec.config.conf, "s3", {})
    monkeypatch.setenv("FSSPEC_S3_MAX_CONCURRENCY", "")  # restored (removed) after the test
    monkeypatch.delenv("FSSPEC_S3_MAX_CONCURRENCY")
    runner._object_store_defaults()
    assert os.environ["FSSPEC_S3_MAX_CONCURRENCY"] == "1" and fsspec.config.conf["s3"] == {"max_concurrency": 1}
    monkeypatch.setenv("FSSPEC_S3_MAX_CONCURRENCY", "4")
    monkeypatch.setitem(fsspec.config.conf, "s3", {"max_concurrency": 4})
    runner._object_store_defaults()
    assert os.environ["FSSPEC_S3_MAX_CONCURRENCY"] == "4" and fsspec.config.conf["s3"] == {"max_concurrency": 4}
