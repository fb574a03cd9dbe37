"""`make bench`: run every benchmark in its own process, collect bench/results.json, print the table.

Each ``bench_*.py`` prints one JSON object on stdout with a ``rows`` list: ``{"name", "alfine",
"reference", "ratio"}`` (alfine's figure, the reference's figure measured in the same run, and
alfine / reference, so > 1 is better for throughputs and < 1 for times, as each row's name says).
``--readme`` also rewrites the README's table between ``<!-- bench:start -->`` and ``<!-- bench:end -->``.
Results are kept per benchmark in ``bench/<name>.json``; ``--only`` re-runs some and the report shows
the latest of each (with its date).

Run: ``.venv/bin/python tests/benchmarks/run_all.py [--scale S] [--only NAME ...] [--readme]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BENCHMARKS = ["learning", "training", "inference", "relabel", "scaling", "scheduling", "downsample", "volumes",
              "postprocess", "agglomeration"]


def machine() -> dict:
    """Cores, memory and CPU of this machine (the figures depend on them)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cores": len(os.sched_getaffinity(0)), "memory_gib": round(memory / 2**30, 1), "cpu": cpu,
            "python": platform.python_version(), "system": platform.system()}


def run(name: str, scale: float) -> dict:
    """The JSON of ``bench_<name>.py`` (stderr passes through); a dict with ``error`` when it fails."""
    script = HERE / f"bench_{name}.py"
    if not script.exists():
        return {"benchmark": name, "error": f"{script.name} does not exist", "rows": []}
    began, load = time.perf_counter(), os.getloadavg()[0]
    done = subprocess.run([sys.executable, str(script), "--scale", str(scale)], stdout=subprocess.PIPE, text=True,
                          cwd=ROOT)
    seconds = round(time.perf_counter() - began, 1)
    load = [round(load, 1), round(os.getloadavg()[0], 1)]  # the machine's 1-minute load before and after
    if done.returncode != 0:
        return {"benchmark": name, "error": f"exit code {done.returncode}", "seconds": seconds, "rows": []}
    result = json.loads(done.stdout)
    result["seconds"], result["load"] = seconds, load
    return result


def table(results: list[dict]) -> str:
    """A markdown table of every row of every benchmark."""
    lines = ["| benchmark | alfine | reference (same run) | ratio |", "| --- | --- | --- | --- |"]
    for result in results:
        if result.get("error"):
            lines.append(f"| {result['benchmark']} | failed: {result['error']} | | |")
        for row in result.get("rows", []):
            lines.append(f"| {row['name']} | {row['alfine']} | {row['reference']} | {row['ratio']} |")
    return "\n".join(lines)


def update_readme(text: str, report: dict) -> str:
    """``text`` with the table between the bench markers replaced by this run's."""
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"README.md has no {start} ... {end} section")
    m = report["machine"]
    loads = [v for result in report["benchmarks"] for v in result.get("load", [])]
    load = f", a load average of {min(loads)}-{max(loads)} (other work slows both sides)" if loads else ""
    body = (f"Measured {report['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
            f"Python {m['python']}, scale {report['scale']}{load} (`make bench`; bench/results.json):\n\n"
            + table(report["benchmarks"]))
    return text[: text.index(start) + len(start)] + "\n" + body + "\n" + text[text.index(end):]


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow every benchmark's problem size")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md's Performance section")
    args = parser.parse_args()
    results = []
    for name in args.only or BENCHMARKS:
        print(f"== bench {name}", file=sys.stderr, flush=True)
        results.append(run(name, args.scale))
        (ROOT / "bench").mkdir(exist_ok=True)
    for result in results:
        result["date"] = time.strftime("%Y-%m-%d %H:%M")
        (ROOT / "bench" / f"{result['benchmark']}.json").write_text(json.dumps(result, indent=2) + "\n")
    # the latest result of every benchmark: those run now, and earlier ones kept in bench/<name>.json
    results = [json.loads((ROOT / "bench" / f"{name}.json").read_text()) for name in BENCHMARKS
               if (ROOT / "bench" / f"{name}.json").exists()]
    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "scale": args.scale, "benchmarks": results}
    (ROOT / "bench" / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    if args.readme:
        readme = ROOT / "README.md"
        readme.write_text(update_readme(readme.read_text(), report))
    return report


if __name__ == "__main__":
    main()
