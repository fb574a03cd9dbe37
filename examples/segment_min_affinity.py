"""A user's own post-processing function for alfine-postprocess-block (the demo's baseline).

alfine-postprocess-block --method examples/segment_min_affinity.py:segment --params '{"threshold": 0.5}'
calls ``segment`` on each block's prediction (numpy, channels first) and its parameters; the function
knows nothing about blocks, chunks or files. Its objects are joined across block faces by
alfine-relabel (face connectivity, as the components here), so the result equals ``segment`` applied
to the whole volume at once.
"""

import cc3d
import numpy as np


def segment(prediction: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Connected components (face connectivity) of the voxels whose nearest-neighbour affinities
    (the first three channels) all exceed ``threshold``."""
    inside = (prediction[:3].min(axis=0) > threshold).astype(np.uint8)
    return cc3d.connected_components(inside, connectivity=6, out_dtype=np.uint64)
