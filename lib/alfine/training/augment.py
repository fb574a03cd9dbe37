"""Training augmentations: one random geometric map for raw, labels and mask together, then intensity on raw.

Geometry (mirror, transpose, rotation, elastic deformation) is one world map
(:class:`~alfine.training.warp.WorldMap`), so raw, labels and mask stay aligned even on different
voxel grids; the caller reads :meth:`Augmentation.source_roi` around each target, so the map never
samples outside what was read. Anisotropic data (one axis coarser, e.g. z at (40, 4, 4)) is only
mirrored along the coarse axis, never rotated, transposed or elastically displaced across it.

Intensity operations act on raw only and assume it is normalised: gamma needs values in [0, 1]
or [-1, 1] (it maps both onto themselves); ``intensity_shift_range`` and ``noise_std`` are in
those normalised units; scale, blur and section operations work on any range.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from funlib.geometry import Roi
from scipy.ndimage import gaussian_filter
from scipy.ndimage import shift as shift_array

from .warp import ElasticField, WorldMap

_PROBABILITIES = ("mirror", "transpose", "rotate", "elastic", "intensity_scale", "intensity_shift", "gamma",
                  "noise", "blur", "missing_section", "shifted_section")


@dataclass(kw_only=True)
class AugmentConfig:
    """The trainer's ``augment`` section: each augmentation applies to a sample with its probability.

    ``mirror`` flips each axis independently; ``transpose`` permutes axes of equal voxel size (y and x
    for anisotropic z); ``rotate`` turns by a uniform angle in the plane of the finest axes (y, x), or
    in full 3D with ``rotate_3d`` when all axes are isotropic. ``elastic`` displaces by random vectors
    of std ``elastic_magnitude`` (world units, truncated at 3 std) on a lattice of ``elastic_spacing``
    (world units), interpolated linearly; for anisotropic data only the in-plane components move.
    ``blur_sigma`` is in voxels, in the plane of the finest axes. ``missing_section`` and
    ``shifted_section`` are per section along the coarse axis of anisotropic data: a missing section
    becomes the sample's mean, a shifted one moves in-plane by up to ``max_section_shift`` voxels.
    """

    mirror: float = 0.5
    transpose: float = 0.5
    rotate: float = 0.5
    rotate_3d: bool = False
    elastic: float = 0.5
    elastic_spacing: float = 80.0
    elastic_magnitude: float = 8.0
    intensity_scale: float = 0.5
    intensity_scale_range: tuple[float, float] = (0.8, 1.2)
    intensity_shift: float = 0.5
    intensity_shift_range: tuple[float, float] = (-0.1, 0.1)
    gamma: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise: float = 0.3
    noise_std: float = 0.05
    blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    missing_section: float = 0.0
    shifted_section: float = 0.0
    max_section_shift: int = 4

    def __post_init__(self):
        for name in _PROBABILITIES:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, between 0 and 1")
        for name in ("intensity_scale_range", "intensity_shift_range", "gamma_range", "blur_sigma"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be [low, high] with low <= high")
        if self.intensity_scale_range[0] <= 0 or self.gamma_range[0] <= 0 or self.blur_sigma[0] < 0:
            raise ValueError("intensity_scale_range and gamma_range must be positive, blur_sigma non-negative")
        if self.elastic_spacing <= 0 or self.elastic_magnitude < 0 or self.noise_std < 0:
            raise ValueError("elastic_spacing must be positive, elastic_magnitude and noise_std non-negative")
        if self.max_section_shift < 0:
            raise ValueError("max_section_shift must be >= 0")


def fine_axes(voxel_size) -> tuple[int, ...]:
    """The axes of the smallest voxel size: the plane that rotation, elastic and blur act in."""
    v = np.asarray(voxel_size, float)
    return tuple(int(a) for a in np.flatnonzero(v == v.min()))


def _section_axis(voxel_size) -> int | None:
    """The coarse axis of anisotropic data (the one axis not among the finest), else None."""
    coarse = [a for a in range(len(voxel_size)) if a not in fine_axes(voxel_size)]
    return coarse[0] if len(coarse) == 1 else None


def _draw_matrix(config: AugmentConfig, rng: np.random.Generator, voxel_size) -> np.ndarray:
    """mirror @ transpose @ rotation, each drawn with its probability; mixes only axes of equal voxel size."""
    dims = len(voxel_size)
    mirror = np.diag(np.where(rng.random(dims) < config.mirror, -1.0, 1.0))
    transpose = np.eye(dims)
    if rng.random() < config.transpose:
        perms = [p for p in itertools.permutations(range(dims))
                 if p != tuple(range(dims)) and all(voxel_size[i] == voxel_size[p[i]] for i in range(dims))]
        if perms:
            transpose = transpose[list(perms[rng.integers(len(perms))])]
    rotation = np.eye(dims)
    plane = fine_axes(voxel_size)
    if rng.random() < config.rotate and len(plane) >= 2:
        if config.rotate_3d and len(plane) == dims == 3:
            q, r = np.linalg.qr(rng.standard_normal((3, 3)))
            rotation = q * np.sign(np.diag(r))  # uniform on O(3) ...
            rotation[:, 0] *= np.linalg.det(rotation)  # ... made a proper rotation
        else:
            a, b = plane[-2:]
            angle = rng.uniform(0, 2 * np.pi)
            rotation[[a, a, b, b], [a, b, a, b]] = np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)
    return mirror @ transpose @ rotation


def _uniform(rng: np.random.Generator, probability: float, bounds: tuple[float, float], identity: float) -> float:
    return float(rng.uniform(*bounds)) if rng.random() < probability else identity


@dataclass
class Augmentation:
    """The random choices for one sample: a world map for geometry and the intensity parameters.

    The map turns about ``centre``: the world point given to :meth:`draw`, or else the centre of
    the first target roi the augmentation is used with (by :meth:`source_roi` or :meth:`warp`);
    every later call reuses it, so raw, labels and mask stay aligned whatever their rois.
    """

    world_map: WorldMap
    voxel_size: tuple[float, ...]  # raw voxel size: decides the plane and the coarse axis
    config: AugmentConfig
    scale: float = 1.0
    shift: float = 0.0
    gamma: float = 1.0
    blur_sigma: float = 0.0
    noise_std: float = 0.0

    @classmethod
    def draw(cls, config: AugmentConfig, rng: np.random.Generator, voxel_size, centre=None) -> Augmentation:
        """The choices for one sample; ``voxel_size`` is raw's, ``centre`` the world point to turn about."""
        voxel_size = tuple(float(v) for v in voxel_size)
        matrix = _draw_matrix(config, rng, voxel_size)
        elastic = None
        if rng.random() < config.elastic and config.elastic_magnitude > 0:
            elastic = ElasticField(seed=int(rng.integers(2**63)), spacing=config.elastic_spacing,
                                   magnitude=config.elastic_magnitude, axes=fine_axes(voxel_size))
        world_map = WorldMap(matrix, elastic, None if centre is None else np.asarray(centre, float))
        return cls(world_map, voxel_size, config,
                   scale=_uniform(rng, config.intensity_scale, config.intensity_scale_range, 1.0),
                   shift=_uniform(rng, config.intensity_shift, config.intensity_shift_range, 0.0),
                   gamma=_uniform(rng, config.gamma, config.gamma_range, 1.0),
                   blur_sigma=_uniform(rng, config.blur, config.blur_sigma, 0.0),
                   noise_std=config.noise_std if rng.random() < config.noise else 0.0)

    @property
    def centre(self) -> np.ndarray | None:
        return self.world_map.centre

    def source_roi(self, target_roi: Roi, voxel_size) -> Roi:
        """The region (on the grid of ``voxel_size``, aligned outwards) to read for warping onto ``target_roi``."""
        return self.world_map.source_roi(target_roi, voxel_size)

    def warp(self, source: np.ndarray, source_roi: Roi, target_roi: Roi, voxel_size, order: int,
             mode: str = "nearest", cval: float = 0.0) -> np.ndarray:
        """``source`` on ``source_roi`` moved onto ``target_roi``'s grid; order 1 for raw, 0 for labels and mask."""
        return self.world_map.warp(source, source_roi, target_roi, voxel_size, order, mode, cval)

    def intensity(self, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Raw (leading channel axes allowed) after gamma, scale, shift, blur, noise and section defects.

        Gamma is ``sign(x) |x| ** gamma``; noise is additive Gaussian; missing and shifted sections
        (along the coarse axis of anisotropic data only) are drawn from ``rng`` per section.
        """
        out = np.asarray(raw, dtype=np.result_type(raw.dtype, np.float32))
        dims = len(self.voxel_size)
        if self.gamma != 1.0:
            out = np.sign(out) * np.abs(out) ** self.gamma
        out = out * self.scale + self.shift
        if self.blur_sigma > 0:
            sigma = [0.0] * (out.ndim - dims) + [self.blur_sigma if a in fine_axes(self.voxel_size) else 0.0
                                                 for a in range(dims)]
            out = gaussian_filter(out, sigma, mode="nearest")
        if self.noise_std > 0:
            out = out + rng.normal(0.0, self.noise_std, out.shape).astype(out.dtype)
        axis = _section_axis(self.voxel_size)
        if axis is not None:
            out = self._sections(out, out.ndim - dims + axis, rng)
        return out

    def _sections(self, raw: np.ndarray, axis: int, rng: np.random.Generator) -> np.ndarray:
        """Sections along ``axis`` shifted in-plane (edges repeated) or replaced by the mean, at random."""
        config, out, mean = self.config, raw.copy(), raw.mean()
        sections = np.moveaxis(out, axis, 0)  # a view: writing into it writes into out
        lead = raw.ndim - len(self.voxel_size)
        for i in np.flatnonzero(rng.random(len(sections)) < config.shifted_section):
            offset = rng.integers(-config.max_section_shift, config.max_section_shift + 1, len(self.voxel_size) - 1)
            sections[i] = shift_array(sections[i], [0] * lead + list(offset), order=0, mode="nearest")
        sections[rng.random(len(sections)) < config.missing_section] = mean
        return out
