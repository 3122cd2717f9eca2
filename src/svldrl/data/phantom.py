"""Synthetic organ phantoms with exact labels: fast, seeded stand-ins for real scans in tests and studies.

Each phantom has an organ (a smoothly deformed ellipsoid, sometimes with a thin, possibly branching
vessel), an unlabelled elongated distractor of similar brightness right beside it (so thresholding
is not enough and a model must use shape and context), textured tissue inside a body outline, a
partial-volume blur, a smooth multiplicative bias field and Rician noise. The label is the exact
binary organ, drawn before any blur or noise.
"""

from __future__ import annotations

from pathlib import Path

import edt
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from svldrl.data.case import Case, LabelSpec
from svldrl.data.intensity import normalise_image
from svldrl.data.labels import class_codec

PHANTOM_LABELS = LabelSpec(("background", "organ"))
PHANTOM_MODALITY: tuple[str, ...] = ("MRI",)
ORGAN_SHARE = (0.08, 0.16)
"""Range of the organ ellipsoid's share of the volume (before deformation; the vessel adds a little)."""
DISTRACTOR_RATIO = (0.35, 0.7)
"""Range of the distractor's volume relative to the organ's."""
VESSEL_PROBABILITY = 0.6
BRANCH_PROBABILITY = 0.5


def _as_shape(size: int | tuple[int, int, int]) -> tuple[int, int, int]:
    shape = (size,) * 3 if isinstance(size, int) else tuple(int(s) for s in size)
    if len(shape) != 3 or min(shape) < 16:
        raise ValueError(f"size must be an int or 3 ints, each >= 16, got {size!r}")
    return shape  # type: ignore[return-value]


def _unit_axes(shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Voxel-centre coordinates in [-1, 1] along each axis, shaped to broadcast: (H,1,1), (1,W,1), (1,1,D)."""
    axes = []
    for axis, n in enumerate(shape):
        coords = np.linspace(-1 + 1 / n, 1 - 1 / n, n, dtype=np.float32)
        axes.append(coords.reshape([-1 if a == axis else 1 for a in range(3)]))
    return axes


def _smooth_field(grid: list[np.ndarray], rng: np.random.Generator, n_waves: int, frequency: float) -> np.ndarray:
    """A smooth random field of unit scale: a sum of random low-frequency plane waves, (H, W, D)."""
    field = np.zeros(np.broadcast_shapes(*(g.shape for g in grid)), dtype=np.float32)
    for _ in range(n_waves):
        k = rng.normal(0.0, frequency, size=3).astype(np.float32)
        phase = np.float32(rng.uniform(0, 2 * np.pi))
        field += np.float32(rng.normal()) * np.sin(k[0] * grid[0] + k[1] * grid[1] + k[2] * grid[2] + phase)
    return field / np.float32(np.sqrt(n_waves))


def _extent(radii: np.ndarray, rotation: np.ndarray, direction: np.ndarray) -> float:
    """Distance from an ellipsoid's centre to its surface along a unit ``direction``."""
    return float(1.0 / np.linalg.norm((rotation.T @ direction) / radii))


def _deformed_ellipsoid(
    grid: list[np.ndarray],
    centre: np.ndarray,
    radii: np.ndarray,
    rotation: np.ndarray,
    roughness: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Boolean (H, W, D): an ellipsoid warped by a smooth random displacement of ``roughness * min(radii)``."""
    amplitude = np.float32(roughness * float(radii.min()))
    offset = [
        g - np.float32(c) + amplitude * _smooth_field(grid, rng, 3, 2.5) for g, c in zip(grid, centre, strict=True)
    ]
    inside = np.zeros(offset[0].shape, dtype=np.float32)
    for i in range(3):  # coordinate i in the ellipsoid's own frame, scaled by its radius
        local = sum(np.float32(rotation[j, i] / radii[i]) * offset[j] for j in range(3))
        inside += local * local
    return inside <= 1.0


def _unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _to_voxels(points: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(N, 3) unit-grid coordinates -> (M, 3) integer voxel indices inside the volume."""
    size = np.array(shape)
    idx = np.round((points + 1.0) * size / 2.0 - 0.5).astype(int)
    return idx[np.all((idx >= 0) & (idx < size), axis=1)]


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) points along the quadratic Bezier curve p0 -> p2 bent towards p1."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _vessel(
    shape: tuple[int, int, int],
    centre: np.ndarray,
    radii: np.ndarray,
    rotation: np.ndarray,
    away_from: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, bool]:
    """Boolean (H, W, D) tube leaving the organ on the side away from the distractor; and whether it branches."""
    direction = _unit_vector(rng)
    if direction @ away_from < 0:
        direction = -direction
    start = centre + 0.8 * _extent(radii, rotation, direction) * direction  # starts inside, so it stays attached
    heading = direction + 0.5 * _unit_vector(rng)
    heading /= np.linalg.norm(heading)
    end = start + rng.uniform(0.45, 0.7) * heading
    bend = (start + end) / 2 + 0.15 * _unit_vector(rng)
    n_points = 4 * max(shape)
    curves = [_bezier(start, bend, end, n_points)]
    branches = bool(rng.random() < BRANCH_PROBABILITY)
    if branches:
        fork = curves[0][int(rng.uniform(0.4, 0.7) * n_points)]
        side = _unit_vector(rng)
        side -= (side @ heading) * heading  # leave sideways
        twig_end = fork + rng.uniform(0.25, 0.4) * side / np.linalg.norm(side)
        curves.append(_bezier(fork, (fork + twig_end) / 2 + 0.05 * _unit_vector(rng), twig_end, n_points // 2))
    seeds = np.ones(shape, dtype=np.uint8)
    for curve in curves:
        idx = _to_voxels(curve, shape)
        seeds[idx[:, 0], idx[:, 1], idx[:, 2]] = 0
    radius = max(1.0, rng.uniform(0.02, 0.035) * min(shape))  # in voxels
    return edt.edt(seeds) <= radius, branches


def _render(
    grid: list[np.ndarray], organ: np.ndarray, distractor: np.ndarray, body: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Raw (H, W, D) intensities: tissue levels, texture, partial-volume blur, bias field, Rician noise."""
    air, tissue = rng.uniform(0.0, 0.05), rng.uniform(0.25, 0.4)
    organ_level = rng.uniform(0.6, 0.8)
    distractor_level = organ_level * rng.uniform(0.92, 1.08)
    texture = _smooth_field(grid, rng, 6, 4.0)
    image = np.full(organ.shape, air, dtype=np.float32)
    image[body] = tissue * (1 + 0.1 * texture[body])
    image[distractor] = distractor_level * (1 + 0.05 * texture[distractor])
    image[organ] = organ_level * (1 + 0.05 * texture[organ])
    image = ndimage.gaussian_filter(image, sigma=rng.uniform(0.6, 1.0))  # partial-volume effect
    image *= np.exp(0.2 * _smooth_field(grid, rng, 3, 1.0))  # smooth multiplicative bias field
    sigma = rng.uniform(0.02, 0.05) * organ_level
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imaginary = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(real**2 + imaginary**2)  # Rician magnitude


def make_phantom(
    size: int | tuple[int, int, int],
    rng: np.random.Generator,
    case_id: str = "phantom",
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Case:
    """One phantom ``Case``: image (1, H, W, D) in [0, 1], exact uint8 label of the organ.

    ``meta["distractor"]`` is the (unlabelled) distractor's boolean mask; ``meta["vessel"]`` and
    ``meta["branch"]`` say whether the organ has a vessel and whether it branches.
    """
    shape = _as_shape(size)
    grid = _unit_axes(shape)
    share = rng.uniform(*ORGAN_SHARE)
    aspect = rng.uniform(0.75, 1.3, size=3)
    organ_radii = (6 * share / np.pi / aspect.prod()) ** (1 / 3) * aspect  # ellipsoid volume 4/3 pi abc of 8
    elongated = np.array([1.9, 0.75, 0.75]) * rng.uniform(0.9, 1.1, size=3)  # a cigar, unlike the organ
    ratio = rng.uniform(*DISTRACTOR_RATIO)
    distractor_radii = (ratio * organ_radii.prod() / elongated.prod()) ** (1 / 3) * elongated
    organ_rot = Rotation.random(rng=rng).as_matrix()
    distractor_rot = Rotation.random(rng=rng).as_matrix()

    towards = _unit_vector(rng)  # organ -> distractor
    organ_ext = _extent(organ_radii, organ_rot, towards)
    distractor_ext = _extent(distractor_radii, distractor_rot, -towards)
    gap = rng.uniform(0.03, 0.08)
    span = 2 * organ_ext + gap + 2 * distractor_ext
    organ_centre = rng.uniform(-0.1, 0.1, size=3) - towards * (span / 2 - organ_ext)
    distractor_centre = organ_centre + towards * (organ_ext + gap + distractor_ext)

    organ = _deformed_ellipsoid(grid, organ_centre, organ_radii, organ_rot, 0.25, rng)
    vessel = bool(rng.random() < VESSEL_PROBABILITY)
    branch = False
    if vessel:
        tube, branch = _vessel(shape, organ_centre, organ_radii, organ_rot, -towards, rng)
        organ |= tube
    distractor = _deformed_ellipsoid(grid, distractor_centre, distractor_radii, distractor_rot, 0.2, rng)
    distractor &= ~ndimage.binary_dilation(organ)  # at least one voxel of tissue between the two
    body = _deformed_ellipsoid(grid, np.zeros(3), rng.uniform(0.88, 0.98, size=3), np.eye(3), 0.05, rng)
    body |= organ | distractor

    raw = _render(grid, organ, distractor, body, rng)
    image, windows = normalise_image(raw[None], PHANTOM_MODALITY, source=case_id)
    affine = np.diag([*map(float, spacing), 1.0])
    meta = {
        "format": "phantom",
        "distractor": distractor,
        "vessel": vessel,
        "branch": branch,
        "modality": PHANTOM_MODALITY,
        "codec": class_codec(PHANTOM_LABELS.names),
        "intensity_window": windows,
        "original_shape": shape,
        "original_spacing": tuple(float(s) for s in spacing),
        "original_affine": affine.copy(),
    }
    spacing_mm = (float(spacing[0]), float(spacing[1]), float(spacing[2]))
    return Case(image, organ.astype(np.uint8), spacing_mm, case_id, affine=affine, meta=meta)


def make_phantoms(
    n: int, size: int | tuple[int, int, int], seed: int, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> list[Case]:
    """``n`` phantoms ``phantom_000`` ...; phantom ``i`` depends only on (seed, i), not on ``n``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    width = max(3, len(str(n - 1)))
    children = np.random.SeedSequence(seed).spawn(n)
    return [
        make_phantom(size, np.random.default_rng(child), f"phantom_{i:0{width}d}", spacing)
        for i, child in enumerate(children)
    ]


def write_phantom_dataset(
    out: str | Path,
    n: int,
    size: int | tuple[int, int, int],
    seed: int,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    overwrite: bool = False,
) -> Path:
    """Write ``n`` phantoms as an MSD data set (imagesTr, labelsTr, dataset.json; MRI; background/organ).

    ``overwrite``: write into a folder that is not empty (files of the same names are replaced).
    """
    from svldrl.data.writers import write_msd_dataset

    cases = make_phantoms(n, size, seed, spacing)
    return write_msd_dataset(
        cases, PHANTOM_LABELS, out, name="phantom", modality=PHANTOM_MODALITY, overwrite=overwrite
    )
