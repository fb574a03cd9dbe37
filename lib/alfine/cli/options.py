"""Option groups that several commands share, defined once.

- :class:`OutputOptions`: how created arrays are stored (chunks, zarr format, shards,
  compression) and whether a mismatching output may be replaced;
- :class:`BlockwiseOptions`: the block contract of the ``*-block`` commands (``--roi``,
  ``--block-shape``, ``--block-id``, ``--list-blocks``, ``--workers``, ``--launcher``, ``--status``).
"""

import dataclasses
from typing import Optional

from . import flags
from .runner import Common


@dataclasses.dataclass(kw_only=True)
class OutputOptions(Common):
    chunk_shape: tuple = flags.chunk_shape()
    zarr_format: int = flags.zarr_format()
    shards: Optional[tuple] = flags.shards()
    compression: str = flags.compression()
    overwrite: bool = flags.overwrite()

    def storage(self) -> dict:
        """The keyword arguments of ``alfine.volumes.prepare_volume`` these options set."""
        return {"chunk_shape": self.chunk_shape, "zarr_format": self.zarr_format, "shards": self.shards,
                "compression": self.compression, "overwrite": self.overwrite}


@dataclasses.dataclass(kw_only=True)
class BlockwiseOptions(Common):
    roi: Optional[object] = flags.region()
    block_shape: Optional[tuple] = flags.block_shape()
    block_id: Optional[int] = flags.block_id()
    list_blocks: bool = flags.list_blocks()
    workers: int = flags.workers()
    launcher: Optional[str] = flags.launcher()
    status: bool = flags.status()

    def request(self):
        """The :class:`alfine.blockwise.BlockRequest` these options make."""
        from ..blockwise.contract import BlockRequest

        return BlockRequest(roi=self.roi, block_shape=self.block_shape, block_id=self.block_id,
                            list_blocks=self.list_blocks, workers=self.workers, launcher=self.launcher)

    def status_steps(self) -> Optional[dict]:
        """The steps ``--status`` reports (name -> done markers URL); None: the one step of ``--output``'s own
        markers. A command whose steps keep their markers elsewhere says so here."""
        return None

    def report_status(self) -> dict:
        """``--status``: how many blocks of ``--output`` are done, running and creating nothing."""
        from .runner import UsageError

        given = [name for name, value in (("--block-id", self.block_id), ("--list-blocks", self.list_blocks))
                 if value not in (None, False)]
        if given:
            raise UsageError(f"--status reports on the whole output: it takes no {' or '.join(given)}")
        output = getattr(self, "output", None)
        if output is None:
            raise UsageError("--status counts the done blocks of an --output; this command has none to count yet")
        from ..blockwise.status import report

        return report(output, self.status_steps())
