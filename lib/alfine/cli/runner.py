"""Running a command: flags in, one JSON summary out, exit codes as the README says.

A flag's value comes from, in rising priority: the dataclass default, the environment
variable ``ALFINE_<FLAG>`` (``ALFINE_WORKERS=16``), the ``--config FILE`` JSON object (keys
are flag names, with ``-`` or ``_``), and the command line. Exit codes: 0 success, 2 bad
usage or input (one ``error:`` line, no traceback unless ``--debug``), 3 some blocks failed,
1 anything else.
"""

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import time
import typing
from collections.abc import Callable, Sequence
from typing import Any, Optional

from argparse_dataclass import ArgumentParser

from .. import code_gate
from ..memory import freeze_at_first_full_collection, keep_freed_memory, limit_malloc_arenas
from ..redaction import RedactingFilter, redact
from .flags import flag

ENV_PREFIX = "ALFINE_"
QUIET_LOGGERS = ("botocore", "aiobotocore", "s3fs", "fsspec", "urllib3", "aiohttp", "numcodecs")
TORCH_ONLY = ("torch", "onnx", "onnxscript", "matplotlib")
"""Modules only the full installation has (requirements/torch.txt); missing ones get a clear message."""
ENV_HELP = (
    "Any flag's default can be set in the environment as ALFINE_<FLAG> (e.g. ALFINE_WORKERS=16,\n"
    "ALFINE_NO_PROGRESS=1); --config FILE sets flags from a JSON object; the command line wins.\n"
    "On success one JSON object summarising the outputs is printed on stdout; logs go to stderr.\n"
    "Exit codes: 0 done, 2 bad usage or input, 3 some blocks failed (re-run to finish), 1 other errors."
)


@dataclasses.dataclass(kw_only=True)
class Common:
    """The flags every command has."""

    config: Optional[str] = flag(None, "JSON file holding any of this command's flags", metavar="FILE")
    no_progress: bool = flag(False, "no progress bars, nor progress lines where stderr is not a terminal")
    progress_interval: float = flag(30.0, "where stderr is not a terminal (a log file, a batch job), progress is "
                                    "logged as a line every this many seconds", metavar="SECONDS", parse=float)
    debug: bool = flag(False, "debug logs, and tracebacks on errors")


class UsageError(Exception):
    """A flag value that cannot be used; reported as ``error:`` with exit code 2."""


class Terminated(BaseException):
    """SIGTERM arrived: a scheduler's time limit (Slurm, LSF), scancel/bkill, or a shutdown."""


TERMINATED = ("terminated by SIGTERM (a scheduler's time limit, scancel or bkill, or a shutdown); what was "
              "finished is kept (done blocks, checkpoints): run the same command again to resume")


def _catch_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in this process, so a job stopped at its time limit says so in its
    log (exit 143, as the signal's); processes forked from it (data loaders) end as the signal says."""
    main = os.getpid()

    def handler(signum, frame):
        if os.getpid() != main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a test calling run() from a thread): keep the default
        pass


def _object_store_defaults() -> None:
    """S3 reads are one GET each: by default s3fs first asks an object's size (a HEAD, and a LIST where the
    object is missing, as most of zarr's metadata probes are) to read objects over its 50 MiB block size as
    concurrent ranges, a size chunks and metadata do not reach. Set as fsspec's default
    (``FSSPEC_S3_MAX_CONCURRENCY``, which workers inherit), so that a user's own ``FSSPEC_S3*`` setting wins."""
    if any(key.startswith("FSSPEC_S3") for key in os.environ):
        return
    os.environ["FSSPEC_S3_MAX_CONCURRENCY"] = "1"
    config = sys.modules.get("fsspec.config")
    if config is not None:  # fsspec read the environment already
        config.conf.setdefault("s3", {}).setdefault("max_concurrency", 1)


def _env_name(field: dataclasses.Field) -> str:
    return ENV_PREFIX + field.name.upper()


def _convert(field: dataclasses.Field, hint: Any, value: Any, where: str) -> Any:
    """``value`` (text from the environment, or JSON from a config file) as the field's type."""
    parse = field.metadata.get("type")
    base = _base_type(hint)
    if value is None and _optional(hint):
        return None
    if base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise UsageError(f"{where}: expected true or false, got {value!r}")
    try:
        if parse is not None:
            converted = parse(value)
        elif base in (int, float) and isinstance(value, str):
            converted = base(value)
        elif base is float and isinstance(value, int) and not isinstance(value, bool):
            converted = float(value)
        elif base in (int, float, str) and not (isinstance(value, base) and not isinstance(value, bool)):
            raise ValueError(f"expected {base.__name__}, got {value!r}")
        else:
            converted = value
    except Exception as e:  # a parser's own complaint, reworded to name the flag
        raise UsageError(f"{where}: {getattr(e, 'args', [e])[0] if getattr(e, 'args', None) else e}") from None
    choices = field.metadata.get("choices")
    if choices and converted not in choices:
        raise UsageError(f"{where}: {converted!r} is not one of {', '.join(map(str, choices))}")
    return converted


def _base_type(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)


def _flag_name(field: dataclasses.Field) -> str:
    return "--" + field.name.replace("_", "-")


def _config_values(path: str, fields: dict[str, dataclasses.Field], hints: dict) -> dict[str, Any]:
    from ..configs import read_json
    from ..errors import ConfigError

    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of flags")
    values = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in fields or name == "config":
            known = ", ".join(sorted(f for f in fields if f != "config"))
            raise ConfigError(f"{path}: {key}: unknown key; known keys are {known}")
        try:
            values[name] = _convert(fields[name], hints[name], value, f"{path}: {key}")
        except UsageError as e:
            raise ConfigError(str(e)) from None
    return values


class _LazyDescriptionParser(ArgumentParser):
    """An argument parser whose description may be a callable, called for the text when help is written (a
    command that only parses its arguments never writes it: the registry's help costs about a millisecond)."""

    @property
    def description(self) -> str | None:
        text = self.__dict__.get("_description")
        if callable(text):
            text = self.__dict__["_description"] = text()
        return text

    @description.setter
    def description(self, text: str | Callable[[], str] | None) -> None:
        self.__dict__["_description"] = text


def build_parser(options_cls: type, prog: str, description: str | Callable[[], str]
                 ) -> tuple[argparse.ArgumentParser, set[str]]:
    """The argument parser of ``options_cls`` and the names of its required flags. A callable ``description``
    is called for the text only when help is written (help that imports the library costs nothing otherwise).

    Required flags are checked after merging (they may come from ``--config`` or the
    environment), so argparse itself requires nothing.
    """
    from .. import __version__

    parser = _LazyDescriptionParser(options_cls, prog=prog, description=description, epilog=ENV_HELP,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{prog} (alfine) {__version__}",
                        help="print the version and exit")
    required = set()
    for action in parser._actions:
        if action.required and action.option_strings:
            action.required = False
            action.default = dataclasses.MISSING  # "not given", as for the optional flags
            required.add(action.dest)
    # The command's own flags first in --help, then the shared ones.
    own = set(options_cls.__dict__.get("__annotations__", {}))
    for group in parser._action_groups:
        group._group_actions.sort(key=lambda a: a.dest not in own)
    return parser, required


def parse_options(options_cls: type, argv: Sequence[str] | None, prog: str, description: str) -> Any:
    """The options of one invocation, merged from defaults, environment, config file and argv."""
    return _parse(options_cls, argv, prog, description)[0]


def _parse(options_cls: type, argv: Sequence[str] | None, prog: str, description: str) -> tuple[Any, set[str]]:
    """:func:`parse_options`, and the names of the flags given on the command line.

    A flag declared ``command_line_only`` (``--allow-code``) set by the environment or ``--config``
    is a :class:`UsageError`: a file must not give itself permissions."""
    parser, required = build_parser(options_cls, prog, description)
    namespace, extras = argparse.ArgumentParser.parse_known_args(parser, argv)
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    given = {k: v for k, v in vars(namespace).items() if v is not dataclasses.MISSING}
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    hints = typing.get_type_hints(options_cls)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        env = os.environ.get(_env_name(field))
        if env is not None and name != "config":
            values[name] = _convert(field, hints[name], env, _env_name(field))
    config_path = given.get("config") or os.environ.get(ENV_PREFIX + "CONFIG")
    if config_path:
        values.update(_config_values(config_path, fields, hints))
    for name, field in fields.items():
        if field.metadata.get("command_line_only") and name in values and values[name] != field.default:
            where = f"--config {config_path}" if config_path else _env_name(field)
            raise UsageError(f"{_flag_name(field)} is set by {where}: it is taken from the command line only")
    values.update(given)
    missing = [n for n in fields if n in required and n not in values]
    if missing:
        names = ", ".join(_flag_name(fields[n]) for n in missing)
        env = _env_name(fields[missing[0]])
        raise UsageError(f"missing {names} (give it on the command line, in --config, or as {env})")
    return options_cls(**values), set(given)


def _allowed_code(options_cls: type, options: Any, given: set[str]) -> tuple[set[str], bool]:
    """The code named on the command line (flags declared ``names_code``), and whether --allow-code was given."""
    named = {getattr(options, f.name) for f in dataclasses.fields(options_cls)
             if f.metadata.get("names_code") and f.name in given and isinstance(getattr(options, f.name), str)}
    return named, bool(getattr(options, "allow_code", False))


def run(options_cls: type, body: Callable[[Any], dict], description: str, argv: Sequence[str] | None = None,
        prog: str | None = None) -> int:
    """Parse flags, run ``body(options)``, print its summary as JSON on stdout; the exit code."""
    prog = prog or os.path.basename(sys.argv[0])
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        options, given = _parse(options_cls, argv, prog, description)
        debug = options.debug
        if getattr(options, "launcher", None):
            from ..blockwise.launch import check_launcher

            check_launcher(options.launcher)
        _record_invocation(options_cls, argv)
        logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, stream=sys.stderr, force=True,
                            format=f"{prog}: %(message)s")
        for handler in logging.getLogger().handlers:  # credentials never reach a log line
            handler.addFilter(RedactingFilter())
        for chatty in QUIET_LOGGERS:  # their INFO lines (where credentials were found, ...) are not ours to show
            logging.getLogger(chatty).setLevel(logging.DEBUG if debug else logging.WARNING)
        from .. import progress

        if not options.progress_interval > 0:
            raise UsageError(f"--progress-interval {options.progress_interval:g}: expected a number of seconds "
                             "above 0")
        progress.set_enabled(not options.no_progress)
        progress.set_interval(options.progress_interval)
        _object_store_defaults()
        limit_malloc_arenas()
        keep_freed_memory()
        freeze_at_first_full_collection()
        started = time.perf_counter()
        _catch_sigterm()
        named, allow_any = _allowed_code(options_cls, options, given)
        if getattr(options, "status", False):  # the block contract's --status: reads the markers, runs nothing
            summary = options.report_status()
        else:
            with code_gate.restricted(named, allow_any):
                summary = body(options)
        summary = {**summary, "seconds": round(time.perf_counter() - started, 3)}
        sys.stdout.write(redact(json.dumps(summary, default=_json_default)) + "\n")
        sys.stdout.flush()
        return 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{prog}: {TERMINATED}", file=sys.stderr, flush=True)
        return 143
    except BrokenPipeError:  # stdout closed early (`... | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # every failure becomes one line and an exit code
        code, message = _classify(error)
        if debug:
            import traceback

            print(redact(traceback.format_exc()), end="", file=sys.stderr)
        elif code == 1:
            message += " (run with --debug for the traceback)"
        print(f"{prog}: error: {redact(message)}", file=sys.stderr)
        return code


def _record_invocation(options_cls: type, argv: Sequence[str] | None) -> None:
    """Remember ``alfine-<command> ARGS`` for workers started through ``--launcher`` (they repeat it)."""
    module = options_cls.__module__
    if module.startswith("alfine_tools."):
        from ..blockwise.launch import set_invocation

        command = "alfine-" + module.rpartition(".")[2].replace("_", "-")
        set_invocation(command, list(sys.argv[1:] if argv is None else argv))


def _classify(error: Exception) -> tuple[int, str]:
    from ..errors import AlfineError

    if isinstance(error, AlfineError):
        return error.exit_code, str(error)
    if isinstance(error, UsageError):
        return 2, str(error)
    if isinstance(error, ModuleNotFoundError) and error.name in TORCH_ONLY:
        return 2, (f"this needs {error.name}, which is not installed here (the slim image has no torch: use the "
                   "full image, or an ONNX model for inference)")
    if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return 2, f"{error.strerror or type(error).__name__}: {error.filename or error}"
    return 1, f"{type(error).__name__}: {error}"


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set):
        return list(value)
    return str(value)
