"""alfine-synthesize: an EM-like raw volume with instance labels, for demos, tests and benchmarks."""

import dataclasses
from typing import Optional

from alfine.cli import BlockwiseOptions, OutputOptions, flag, flags, run

DESCRIPTION = """Synthesize an EM-like volume: packed cells with dark membranes, mitochondria-like organelles,
vesicles, texture, blur and noise. Writes into the container:
  raw      uint8    the image
  labels   uint64   instance ids (cells and organelles; 0 on membranes)
  classes  uint8    semantic classes: 0 membrane/extracellular, 1 cell, 2 organelle
  mask     uint8    1 inside the "annotated" region (an ellipsoid), for sparse-annotation tests
It is generated block by block (little memory at any size) and is a pure function of --seed and
world position: any --block-shape and any --workers give the same volume. The blocks follow the
contract of every blockwise command (--list-blocks, --block-id N for job arrays, --workers on
daisy, --status; a re-run after a kill writes only the blocks not done).

examples:
  alfine-synthesize --output data.zarr --shape 128,128,128 --voxel-size 8,8,8
  alfine-synthesize --output s3://bucket/big.zarr --shape 1024,1024,1024 --workers 16 \\
      --zarr-format 3 --shards 256,256,256"""


@dataclasses.dataclass(kw_only=True)
class Options(BlockwiseOptions, OutputOptions):
    output: str = flags.output_url("the zarr container to write raw, labels, classes and mask into",
                                   default="synthetic.zarr")
    shape: tuple = flags.shape("volume size in voxels (Z,Y,X or Y,X)", default=(128, 128, 128))
    voxel_size: tuple = flags.voxel_size(default=(8, 8, 8))
    offset: Optional[tuple] = flags.offset(help="world position of the first voxel's corner (default: 0)")
    seed: int = flags.seed()
    cell_size: Optional[float] = flag(None, "mean cell diameter in world units (default: 40 voxels)",
                                      metavar="W", parse=float)
    membrane_width: Optional[float] = flag(None, "membrane thickness in world units (default: 2 voxels)",
                                           metavar="W", parse=float)
    organelle_fraction: float = flag(0.5, "fraction of cells holding an organelle", metavar="F", parse=float)
    noise: float = flag(12.0, "std of the Gaussian noise, in grey levels", metavar="S", parse=float)
    blur_sigma: float = flag(1.0, "Gaussian blur in voxels", metavar="S", parse=float)
    block_shape: Optional[tuple] = flags.block_shape("generation block in voxels, a multiple of the chunks "
                                                     "(default: the chunk or shard shape)")
    preview: Optional[str] = flag(None, "also write a PNG of the central slice (raw | labels | classes | mask)",
                                  metavar="FILE")


    def report_status(self) -> dict:
        """--status counts the done blocks of raw, whose markers the run keeps."""
        return BlockwiseOptions.report_status(dataclasses.replace(self, output=f"{self.output.rstrip('/')}/raw"))


def body(o: Options) -> dict:
    from alfine.jobs.synthesize import SyntheticParams, synthesize

    params = SyntheticParams(seed=o.seed, cell_size=o.cell_size, membrane_width=o.membrane_width,
                             organelle_fraction=o.organelle_fraction, noise=o.noise, blur_sigma=o.blur_sigma)
    return synthesize(o.output, o.shape, o.voxel_size, o.offset, params, o.storage(), o.request(), preview=o.preview)


def main(argv=None) -> int:
    return run(Options, body, DESCRIPTION, argv)
