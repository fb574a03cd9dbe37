"""Segmentations of volumes far larger than memory: per-block post-processing and global relabelling.

- :mod:`.per_block`: postprocess-block's block function: a post-processing method per block, ids unique
  across blocks (``block id * voxels per block + local id``), plus what relabelling needs;
- :mod:`.faces`: the object pairs that meet across block faces;
- :mod:`.unionfind`: the objects those pairs join;
- :mod:`.numbering`: consecutive ids and global sizes (min-size filtering) from per-block records;
- :mod:`.relabel`: relabel's block functions (faces pass, writing pass) and the id mapping;
- :mod:`.records`: small per-block records (npz without pickle) kept beside a volume.

Nothing here imports torch.
"""
