#!/usr/bin/env python3
"""A stand-in for LSF's ``bsub`` that runs the job here: for tests of the cluster paths.

Appends its arguments as one JSON line to ``$BSUB_RECORD``, then runs the command after the
options, waiting for it (as ``bsub -K``). A job array ``-J 'name[1-N]'`` runs the command N times
with ``LSB_JOBINDEX`` = 1..N; ``-o FILE`` (``%J`` the job id, ``%I`` the array index) receives the
job's output. Exits with the first failing job's exit code.
"""

import json
import os
import re
import subprocess
import sys

WITH_VALUE = {"-q", "-n", "-o", "-e", "-J", "-W", "-gpu", "-R", "-M", "-P", "-G"}


def main() -> int:
    args = sys.argv[1:]
    with open(os.environ["BSUB_RECORD"], "a") as record:
        record.write(json.dumps(args) + "\n")
    options = {}
    while args and args[0].startswith("-"):
        if args[0] in WITH_VALUE:
            options[args[0]], args = args[1], args[2:]
        else:
            options[args[0]], args = True, args[1:]
    array = re.fullmatch(r".*\[(\d+)-(\d+)\]", options.get("-J", ""))
    indices = range(int(array.group(1)), int(array.group(2)) + 1) if array else [0]
    job = str(os.getpid())
    for index in indices:
        env = {**os.environ, "LSB_JOBID": job, "LSB_JOBINDEX": str(index)}
        log = options.get("-o")
        if log:
            path = log.replace("%J", job).replace("%I", str(index))
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "a") as out:
                code = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        else:
            code = subprocess.run(args, env=env).returncode
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
