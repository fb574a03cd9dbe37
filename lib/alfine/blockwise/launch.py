"""Workers started through a command prefix (``--launcher 'bsub -K -q gpu -n 4'``).

A launched worker is the very command the user ran, with the same arguments, started as
``LAUNCHER env DAISY_CONTEXT=... ALFINE_BLOCK_WORKER=1 [ALFINE_<FLAG>=...] alfine-<command> ARGS``.
Everything it needs comes from its own command line and configs, as any alfine command's does
(no pickled state travels). It opens the same outputs, builds the same block function and, when
it reaches the blockwise step the scheduler started it for, serves that step's blocks to the
scheduler (daisy's ``Client``) instead of scheduling, then exits. A step it reaches first that is
already finished is skipped as on any re-run.

The launcher must last as long as its worker (``bsub -K``, ``srun``, ``apptainer exec``, ...): a
command that returns at submission tells the scheduler the worker ended. Each worker's output goes
to ``LOGS/worker-N.log`` (``LOGS`` = ``$ALFINE_LOG_DIR`` or ``alfine-logs``, then
``<step>-<time>-<pid>``); a worker that fails is reported with its log's path.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from dataclasses import dataclass

from ..errors import UserError

log = logging.getLogger(__name__)

WORKER_ENV = "ALFINE_BLOCK_WORKER"
"""Set (to 1) in a launched worker's environment."""
LOG_DIR_ENV = "ALFINE_LOG_DIR"
PASSED_ON = ("ALFINE_",)
"""Environment variables a launched worker gets on its command line (flag defaults); never credentials."""
NOT_PASSED_ON = {"ALFINE_LAUNCHER", "ALFINE_WORKERS", "ALFINE_BLOCK_ID", "ALFINE_LIST_BLOCKS", WORKER_ENV,
                 LOG_DIR_ENV}

_INVOCATION: list[str] = []


def set_invocation(command: str, arguments: list[str]) -> None:
    """Record the command this process runs (``alfine-predict-block``) and its arguments, which launched
    workers repeat."""
    _INVOCATION[:] = [command, *arguments]


def invocation() -> list[str]:
    """The recorded command and arguments; a :class:`UserError` when this process is not an alfine command."""
    if not _INVOCATION:
        raise UserError("--launcher needs an alfine command line to repeat (run the alfine-<command> tool)")
    return list(_INVOCATION)


def log_folder(step: str) -> str:
    """A new folder for the worker logs of ``step``."""
    base = os.environ.get(LOG_DIR_ENV) or "alfine-logs"
    folder = os.path.abspath(os.path.join(base, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"))
    os.makedirs(folder, exist_ok=True)
    return folder


def worker_command(launcher: str, command: list[str], context_env: str) -> list[str]:
    """The argument vector that starts one worker: the launcher's words, then ``env`` with the daisy
    context, the worker flag and this process's ``ALFINE_<FLAG>`` defaults, then ``command``."""
    try:
        prefix = shlex.split(launcher)
    except ValueError as e:
        raise UserError(f"--launcher {launcher!r}: {e}") from None
    passed = [f"{k}={v}" for k, v in sorted(os.environ.items())
              if k.startswith(PASSED_ON) and k not in NOT_PASSED_ON]
    return [*prefix, "env", f"DAISY_CONTEXT={context_env}", f"{WORKER_ENV}=1", *passed, *command]


@dataclass
class LaunchedWorker:
    """daisy's worker function for a launcher: starts one worker through it and waits for it to end."""

    launcher: str
    command: list[str]
    log_dir: str

    def __call__(self, *, context=None) -> None:
        worker = context.get("worker_id", "0") if context is not None else "0"
        path = os.path.join(self.log_dir, f"worker-{worker}.log")
        args = worker_command(self.launcher, self.command, context.to_env() if context is not None else "")
        with open(path, "ab") as out:
            out.write(("$ " + shlex.join(args) + "\n").encode())
            out.flush()
            code = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT).returncode
        if code != 0:
            raise RuntimeError(f"worker {worker} exited with code {code}; its log: {path}")


def serving(step: str) -> bool:
    """Whether this process is a launched worker that the scheduler started for ``step``."""
    if not os.environ.get(WORKER_ENV) or "DAISY_CONTEXT" not in os.environ:
        return False
    from daisy import Context

    return Context.from_env().get("task_id") == step


def serve(process) -> int:
    """Process the blocks the scheduler hands out until there are none; how many were processed."""
    from daisy import Client

    client = Client()
    count = 0
    while True:
        with client.acquire_block() as block:
            if block is None:
                return count
            process(block)
            count += 1
