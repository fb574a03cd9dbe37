"""How far a blockwise output is (``--status``): blocks done of the total per step, from the done markers.

Reads only: it runs no block, creates no file or folder, takes no lock, so it may be asked while a run
writes the output (the counts are then a moment's).
"""

from __future__ import annotations

import logging

from ..errors import UserError
from .layout import BlockLayout
from .markers import DoneMarkers, markers_url_for

log = logging.getLogger(__name__)


def step_status(markers_url: str, output_token: str | None = None) -> dict:
    """``{"blocks", "done", "failed"}`` of the step whose markers are under ``markers_url``: ``blocks`` is None
    (and ``done`` 0) before a run recorded its layout, or when the markers belong to an earlier creation of
    the output (its token is not ``output_token``)."""
    markers = DoneMarkers(markers_url, None, output_token)
    recorded = markers.recorded_layout()
    if recorded is None or markers.stale():
        return {"blocks": None, "done": 0, "failed": 0}
    total = len(BlockLayout.from_json(recorded))
    done = len({i for i in markers.done_ids() if 0 <= i < total})
    return {"blocks": total, "done": done, "failed": len(markers.failures())}


def report(output_url: str, steps: dict[str, str] | None = None) -> dict:
    """The status of the output volume ``output_url``: each step's (``steps``: name -> markers URL; default
    the one step of the output's own markers) blocks and done blocks, and their sums. Each step is also
    logged as one line (``write: 12/40 blocks done``). A :class:`UserError` when the output does not exist."""
    from ..volumes import open_volume

    try:
        output = open_volume(output_url)
    except UserError as e:
        raise UserError(f"--output {output_url} does not exist: no run has started it, nothing to report "
                        f"({e})") from None
    token = output.array.attrs.get("alfine_created")
    steps = steps or {"blocks": markers_url_for(output_url)}
    return summarise(output_url, {name: step_status(url, token) for name, url in steps.items()})


def summarise(output_url: str, found: dict[str, dict]) -> dict:
    """The status summary of ``output_url`` from each step's :func:`step_status`, each step logged as one line."""
    for name, step in found.items():
        if step["blocks"] is None:
            log.info("%s: not started", name)
        else:
            failed = f", {step['failed']} failed in the last run" if step["failed"] else ""
            log.info("%s: %d/%d blocks done%s", name, step["done"], step["blocks"], failed)
    known = [s for s in found.values() if s["blocks"] is not None]
    total = sum(s["blocks"] for s in known) if len(known) == len(found) else None
    done = sum(s["done"] for s in found.values())
    return {"output": output_url, "blocks": total, "done": done, "complete": total is not None and done == total,
            "steps": found}
