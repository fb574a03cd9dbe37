"""Workers started through a command prefix (``--launcher 'bsub -K -q gpu -n 4'``).

A launched worker is the very command the user ran, with the same arguments, started as
``LAUNCHER env DAISY_CONTEXT=... ALFINE_BLOCK_WORKER=1 [ALFINE_<FLAG>=...] alfine-<command> ARGS``.
Everything it needs comes from its own command line and configs, as any alfine command's does
(no pickled state travels). It opens the same outputs, builds the same block function and, when
it reaches the blockwise step the scheduler started it for, serves that step's blocks to the
scheduler (daisy's ``Client``) instead of scheduling, then exits. A step it reaches first that is
already finished is skipped as on any re-run.

The launcher must last as long as its worker (``bsub -K``, ``srun``, ``apptainer exec``, ...): a
command that returns at submission tells the scheduler the worker ended. ``sbatch`` (it takes a
script) and ``bsub`` without ``-K`` are refused before anything starts (:func:`check_launcher`);
any other launcher that returns before its worker ended is found out when it returns (a worker
records its end beside the output's done markers, which every worker can reach) and stops the
job with an error that says so. Each worker's output goes to ``LOGS/worker-N.log`` (``LOGS`` =
``$ALFINE_LOG_DIR`` or ``alfine-logs``, then ``<step>-<time>-<pid>``, with no spaces or brackets);
a worker that fails is reported with its log's path and last line, and a worker the scheduler
stopped at its time limit is reported as such (re-running the command resumes).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
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
    """A new folder for the worker logs of ``step``; its name has no spaces or brackets (``relabel-write-...``)."""
    base = os.environ.get(LOG_DIR_ENV) or "alfine-logs"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", step).strip("-") or "step"
    folder = os.path.abspath(os.path.join(base, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"))
    os.makedirs(folder, exist_ok=True)
    return folder


def check_launcher(launcher: str) -> None:
    """A :class:`UserError` for a launcher that cannot start a worker and wait for it: words that do not
    parse, ``sbatch`` (it runs a script, and returns at submission), ``bsub`` without ``-K``."""
    try:
        words = shlex.split(launcher)
    except ValueError as e:
        raise UserError(f"--launcher {launcher!r}: {e}") from None
    if not words:
        raise UserError("--launcher is empty: give a command prefix such as 'srun -N1 -n1 -c2' or 'bsub -K -q short'")
    program = os.path.basename(words[0])
    if program == "sbatch":
        raise UserError(f"--launcher {launcher!r}: sbatch submits a batch script and returns at once; a launcher "
                        "must start the worker command and last as long as it: use srun with the same options "
                        "(e.g. 'srun -N1 -n1 -c2 -p PARTITION -t 60')")
    if program == "bsub" and "-K" not in words[1:]:
        raise UserError(f"--launcher {launcher!r}: bsub returns at submission; add -K so it waits for its worker "
                        "('bsub -K ...')")


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


TIME_LIMIT = re.compile(r"DUE TO TIME LIMIT|time limit|TERM_RUNLIMIT|job killed after reaching LSF run time limit",
                        re.IGNORECASE)
"""How Slurm (``*** STEP 5.0 ON n CANCELLED AT ... DUE TO TIME LIMIT ***``) and LSF (``TERM_RUNLIMIT``) say
that they stopped a job at its time limit."""


def _last_line(path: str) -> str:
    """The last line of a worker's log (what its launcher or the worker said last), shortened."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    lines = [line for line in lines if not line.startswith("$ ")]
    return lines[-1][:300] if lines else ""


def failure_message(worker: str, code: int, path: str) -> str:
    """One line on a launched worker that exited with ``code``: its log's last line and path, or that the
    scheduler stopped it at its time limit."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        text = ""
    if TIME_LIMIT.search(text):
        return (f"worker {worker} was stopped by the scheduler at its time limit (exit code {code}); finished "
                f"blocks are kept: run the same command again to resume, with a longer time limit in --launcher "
                f"if need be; its log: {path}")
    said = _last_line(path)
    return f"worker {worker} exited with code {code}" + (f" ({said})" if said else "") + f"; its log: {path}"


def ended_marker(markers_url: str, worker: str) -> str:
    """Where a launched worker records that it ended: beside the done markers, which every worker reaches."""
    return f"{markers_url.rstrip('/')}/workers/{worker}"


def record_end() -> None:
    """In a launched worker: record, beside the step's done markers, that this worker ended (see
    :class:`LaunchedWorker`)."""
    markers_url = os.environ.get(MARKERS_ENV)
    if not markers_url or "DAISY_CONTEXT" not in os.environ:
        return
    import fsspec
    from daisy import Context

    fs, path = fsspec.core.url_to_fs(ended_marker(markers_url, str(Context.from_env().get("worker_id", "0"))))
    try:
        fs.makedirs(path.rpartition("/")[0], exist_ok=True)
        fs.pipe_file(path, b"")
    except OSError as e:  # the blocks are done; the scheduler's process will say the launcher returned early
        log.warning("could not record this worker's end in %s: %s", path, e)


MARKERS_ENV = "ALFINE_WORKER_MARKERS"
"""Set in a launched worker's environment: the done markers of the step it serves."""


@dataclass
class LaunchedWorker:
    """daisy's worker function for a launcher: starts one worker through it and waits for it to end.

    A worker that fails ends this process with one line naming its log (daisy keeps the line). A launcher
    that returns 0 while its worker has not recorded its end returned at submission: the job is stopped
    (``DoneMarkers.stop``) with an error that says so, instead of daisy starting ever more workers."""

    launcher: str
    command: list[str]
    log_dir: str
    markers_url: str = ""

    def __call__(self, *, context=None) -> None:
        worker = str(context.get("worker_id", "0")) if context is not None else "0"
        if self.markers_url and self._markers().stopped() is not None:
            return  # the job stops (a block met bad input, or a launcher returned at submission)
        path = os.path.join(self.log_dir, f"worker-{worker}.log")
        args = worker_command(self.launcher, self.command, context.to_env() if context is not None else "")
        if self.markers_url:
            args.insert(args.index(f"{WORKER_ENV}=1") + 1, f"{MARKERS_ENV}={self.markers_url}")
        with open(path, "ab") as out:
            out.write(("$ " + shlex.join(args) + "\n").encode())
            out.flush()
            code = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT).returncode
        if code != 0:
            print(failure_message(worker, code, path), file=sys.stderr, flush=True)
            raise SystemExit(code)
        if self.markers_url:
            import fsspec

            fs, marker = fsspec.core.url_to_fs(ended_marker(self.markers_url, worker))
            if not fs.exists(marker):
                said = _last_line(path)
                self._markers().stop(
                    f"--launcher {self.launcher!r} returned (exit code 0{': ' + said if said else ''}) before its "
                    f"worker ended: a launcher must last as long as its worker (srun, bsub -K; not sbatch or bsub "
                    f"without -K); worker {worker}'s log: {path}")

    def _markers(self):
        from .markers import DoneMarkers

        return DoneMarkers(self.markers_url, None)


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
