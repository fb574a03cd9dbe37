"""alfine: one entry point for every command (``alfine predict-block ...`` = ``alfine-predict-block ...``).

Containers use it as their entrypoint, so ``docker run IMAGE predict-block --help`` works.
"""

import importlib
import os
import sys

COMMANDS = ["synthesize", "make-targets", "train", "validate", "evaluate", "export-model", "predict-block",
            "postprocess-block", "relabel", "downsample"]


def _summary(command: str) -> str:
    """The first line of the command module's docstring, without its ``alfine-x:`` prefix."""
    doc = importlib.import_module(f"alfine_tools.{command.replace('-', '_')}").__doc__ or ""
    return doc.strip().splitlines()[0].partition(": ")[2] if doc.strip() else ""


def usage() -> str:
    lines = ["usage: alfine COMMAND [ARGS...]   (the same as alfine-COMMAND [ARGS...])", "", "commands:"]
    lines += [f"  {command:<18} {_summary(command)}" for command in COMMANDS]
    lines += ["", "alfine COMMAND --help shows a command's flags, defaults and examples."]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        try:
            print(usage(), flush=True)
        except BrokenPipeError:  # `alfine | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args[0] == "--version":
        from alfine import __version__

        print(f"alfine {__version__}")
        return 0
    command = args[0].removeprefix("alfine-")
    if command not in COMMANDS:
        print(f"alfine: error: unknown command {args[0]!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"alfine_tools.{command.replace('-', '_')}")
    sys.argv[0] = f"alfine-{command}"
    return module.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
