#!/usr/bin/env python3
"""A one-node Slurm cluster on this host, for the tests of the cluster paths (and by hand).

``slurmctld`` and ``slurmd`` (Debian's ``slurm-wlm``) and ``munged`` (``munge``) run as the
current user (root, as in CI) with everything under one new temporary folder: ``slurm.conf``, a
new munge key, the munge socket, state, spool, pid and log files. Nothing under ``/etc`` or
``/run`` is used or changed; clients find the cluster through ``SLURM_CONF``, which names the
folder's ``slurm.conf`` (its ``AuthInfo`` names the munge socket). Ports are chosen free on
127.0.0.1; the node has this machine's CPUs (``nproc``) and a small ``RealMemory``. Daemons are
stopped by their pids, never by name.

By hand (prints the variable to export; Ctrl-C or SIGTERM stops the cluster and removes its folder)::

    python tests/slurm_cluster.py

munge: ``munged`` runs as root here without ``--force``; what it insists on is a key file owned by
its user and readable by nobody else (mode 0400) and a socket folder that everyone may enter
(mode 0755: ``mkdtemp`` makes 0700, which it refuses with "execute permissions for all required").
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd", "munged")
HOW_TO_ENABLE = "as root: apt-get install slurm-wlm munge (.ci/run does this)"


def missing() -> str | None:
    """Why no cluster can start here (a program not found, or not root), or None."""
    programs = (*DAEMONS, "munge", "srun", "sbatch", "sinfo", "squeue", "scontrol", "scancel")
    absent = [p for p in programs if shutil.which(p) is None]
    if absent:
        return f"{', '.join(absent)} not found"
    if os.geteuid() != 0:
        return "the Slurm daemons run as root here"
    return None


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class SlurmCluster:
    """A one-node Slurm under ``folder``; :meth:`stop` ends its daemons."""

    def __init__(self, folder: str | Path, cpus: int | None = None, partition: str = "debug"):
        self.folder = Path(folder)
        self.cpus = cpus or os.cpu_count() or 1
        self.partition = partition
        self.node = socket.gethostname().split(".")[0]
        self.pids: dict[str, int] = {}

    @property
    def env(self) -> dict[str, str]:
        """The variables a client (srun, sbatch, sinfo) needs."""
        return {"SLURM_CONF": str(self.folder / "slurm.conf")}

    def _write_config(self) -> None:
        f = self.folder
        for sub in ("state", "spool"):
            (f / sub).mkdir()
        os.chmod(f, 0o755)  # munged's socket folder must be enterable by all
        key = f / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)  # ... and its key readable by its user alone
        ctl_port, node_port = _free_ports(2)
        (f / "slurm.conf").write_text(f"""\
ClusterName=alfinetest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctl_port}
SlurmdPort={node_port}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={f}/munge.socket
StateSaveLocation={f}/state
SlurmdSpoolDir={f}/spool
SlurmctldPidFile={f}/slurmctld.pid
SlurmdPidFile={f}/slurmd.pid
SlurmctldLogFile={f}/slurmctld.log
SlurmdLogFile={f}/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
# sched_interval: pending jobs are looked at every second; KillWait: SIGKILL 2 s after SIGTERM; MinJobAge:
# sbatch --wait polls every 2 s when this is 4 (it sleeps 2, 8, then 32 s between polls on a default cluster)
SchedulerParameters=sched_interval=1
KillWait=2
MinJobAge=4
# config_overrides: the node may claim more CPUs than this machine has (tests keep a sleeping job or two
# beside the others)
SlurmdParameters=config_overrides
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=1000 State=UNKNOWN
PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")

    def _daemon(self, name: str, args: list[str]) -> None:
        """Start a daemon that forks into the background and writes ``NAME.pid``; record its pid."""
        pid_file = self.folder / f"{name}.pid"
        env = {**os.environ, **self.env}
        done = subprocess.run([name, *args], env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{name} did not start: {done.stderr.strip() or done.stdout.strip()}")
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip().isdigit():
                self.pids[name] = int(pid_file.read_text())
                return
            time.sleep(0.05)
        raise RuntimeError(f"{name} wrote no pid file ({pid_file})")

    def start(self, timeout: float = 60) -> SlurmCluster:
        """Start munged, slurmctld and slurmd; return once ``sinfo`` shows the node idle (or raise, stopped)."""
        self._write_config()
        f = self.folder
        try:
            self._daemon("munged", [f"--key-file={f}/munge.key", f"--socket={f}/munge.socket",
                                    f"--pid-file={f}/munged.pid", f"--log-file={f}/munged.log",
                                    f"--seed-file={f}/munged.seed"])
            self._daemon("slurmctld", ["-i"])  # -i: ignore (the absent) saved state
            self._daemon("slurmd", ["-N", self.node])
            deadline = time.monotonic() + timeout
            state = ""
            while time.monotonic() < deadline:
                state = self.sinfo()
                if state.startswith("idle"):
                    return self
                time.sleep(0.2)
            raise RuntimeError(f"the node is not idle after {timeout:.0f} s (sinfo: {state!r}); logs in {f}")
        except BaseException:
            self.stop()
            raise

    def sinfo(self) -> str:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=30)
        return done.stdout.strip()

    def stop(self) -> None:
        """Cancel what still runs, then end the daemons by their pids (TERM, then KILL after a few seconds),
        slurmd first (it ends the job steps it started)."""
        if "slurmctld" in self.pids:
            env = {**os.environ, **self.env}
            subprocess.run(["scancel", "--full", "--user", str(os.geteuid())], env=env, capture_output=True,
                           timeout=30)
            for _ in range(50):
                queue = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True, timeout=30)
                if queue.returncode != 0 or not queue.stdout.strip():
                    break
                time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by its new parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def main() -> int:
    reason = missing()
    if reason:
        print(f"no Slurm: {reason}; {HOW_TO_ENABLE}", file=sys.stderr)
        return 2
    folder = tempfile.mkdtemp(prefix="alfine-slurm-")
    cluster = SlurmCluster(folder).start()
    print(f"export SLURM_CONF={cluster.env['SLURM_CONF']}   # Ctrl-C (or SIGTERM) stops the cluster", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
