"""HD95 and ASD against hand-computed cubes and two independent implementations.

Independent references, written here without the package's code path:
- surface voxels from shifted comparisons of a zero-padded array (not scipy's erosion), distances by
  nearest-neighbour queries of a cKDTree on the surface points in mm (no distance transform);
- medpy's own recipe typed out on the full, uncropped volume (scipy erosion + distance_transform_edt),
  which checks that the joint-box crop changes nothing.
"""

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from svldrl.metrics import asd, hd95, hd95_and_asd, surface_distances, volume_diagonal

SPACING = (0.7, 1.1, 2.5)


def _surface_by_shifts(mask: np.ndarray) -> np.ndarray:
    """Foreground voxels with a 6-neighbour outside the mask (outside the volume counts as outside)."""
    p = np.pad(mask, 1, constant_values=False)
    core = p[1:-1, 1:-1, 1:-1]
    inner = (
        core
        & p[:-2, 1:-1, 1:-1]
        & p[2:, 1:-1, 1:-1]
        & p[1:-1, :-2, 1:-1]
        & p[1:-1, 2:, 1:-1]
        & p[1:-1, 1:-1, :-2]
        & p[1:-1, 1:-1, 2:]
    )
    return mask & ~inner


def _kdtree_distances(a: np.ndarray, b: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    pa = np.argwhere(_surface_by_shifts(a)) * np.asarray(spacing)
    pb = np.argwhere(_surface_by_shifts(b)) * np.asarray(spacing)
    d_ab, _ = cKDTree(pb).query(pa)
    d_ba, _ = cKDTree(pa).query(pb)
    return d_ab, d_ba


def _medpy_uncropped(a: np.ndarray, b: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    cross = ndimage.generate_binary_structure(3, 1)
    sa = a ^ ndimage.binary_erosion(a, structure=cross, iterations=1)
    sb = b ^ ndimage.binary_erosion(b, structure=cross, iterations=1)
    d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return d_ab, d_ba


def _random_blob(shape, rng: np.random.Generator, fill: float) -> np.ndarray:
    """Irregular, possibly multi-component blobs: smoothed noise above a quantile."""
    field = ndimage.gaussian_filter(rng.random(shape), sigma=2.0)
    return field > np.quantile(field, 1.0 - fill)


def _hd95(d_ab, d_ba) -> float:
    return float(np.percentile(np.hstack((d_ab, d_ba)), 95))


def _asd(d_ab, d_ba) -> float:
    return float((np.mean(d_ab) + np.mean(d_ba)) / 2)


def test_disjoint_two_voxel_cubes_by_hand() -> None:
    # Every voxel of a 2x2x2 cube is surface. B is A moved 4 voxels along axis 0 (1.5 mm each):
    # A's i=0 layer is 6.0 mm from B's first layer, its i=1 layer 4.5 mm; the same the other way.
    a = np.zeros((10, 6, 6), bool)
    a[1:3, 2:4, 2:4] = True
    b = np.roll(a, 4, axis=0)
    spacing = (1.5, 1.0, 0.8)
    d_ab, d_ba = surface_distances(a, b, spacing)
    assert sorted(d_ab) == [4.5] * 4 + [6.0] * 4
    assert sorted(d_ba) == [4.5] * 4 + [6.0] * 4
    assert hd95(a, b, spacing) == pytest.approx(6.0)  # index 0.95 * 15 = 14.25 lies among the 6.0s
    assert asd(a, b, spacing) == pytest.approx(5.25)


def test_overlapping_three_voxel_cubes_by_hand() -> None:
    # 3x3x3 cubes (26 surface voxels each), B = A moved 1 voxel along axis 0, spacing (2, 1, 0.5).
    # A -> B: A's i=0 face (9 voxels) is 2.0 mm from B's i=1 face; 16 surface voxels coincide with
    # B's surface; A's (2,1,1) face centre lies on B's centre (not surface): nearest is 0.5 mm away
    # along axis 2. B -> A is the mirror image. 52 pooled distances: 32 x 0, 2 x 0.5, 18 x 2.0.
    a = np.zeros((9, 7, 7), bool)
    a[2:5, 2:5, 2:5] = True
    b = np.roll(a, 1, axis=0)
    spacing = (2.0, 1.0, 0.5)
    d_ab, d_ba = surface_distances(a, b, spacing)
    for d in (d_ab, d_ba):
        assert sorted(d) == [0.0] * 16 + [0.5] + [2.0] * 9
    assert hd95(a, b, spacing) == pytest.approx(2.0)
    assert asd(a, b, spacing) == pytest.approx(18.5 / 26)


@pytest.mark.parametrize("k", [5, 6, 9])
def test_separated_cubes_offset_by_k_follow_the_layer_formula(k: int) -> None:
    # Cubes of side n, B = A moved k >= n voxels along axis 0. B's near face is complete, so every
    # surface voxel of A in layer i is (k - i) * s0 from B; layer i holds n^2 surface voxels on the
    # two end faces and n^2 - (n-2)^2 in between. By symmetry B -> A has the same distances.
    n, s0 = 5, 1.3
    spacing = (s0, 0.6, 2.2)
    a = np.zeros((2 + n + k + 2, 9, 9), bool)
    a[2 : 2 + n, 2 : 2 + n, 2 : 2 + n] = True
    b = np.roll(a, k, axis=0)
    per_layer = [n * n if i in (0, n - 1) else n * n - (n - 2) ** 2 for i in range(n)]
    expected = np.repeat([(k - i) * s0 for i in range(n)], per_layer)
    pooled = np.hstack((expected, expected))
    assert hd95(a, b, spacing) == pytest.approx(np.percentile(pooled, 95))
    assert asd(a, b, spacing) == pytest.approx(expected.mean())


def test_brute_force_pairwise_distances_on_tiny_random_masks() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.random((6, 7, 5)) > 0.5
        b = rng.random((6, 7, 5)) > 0.6
        pa = np.argwhere(_surface_by_shifts(a)) * np.asarray(SPACING)
        pb = np.argwhere(_surface_by_shifts(b)) * np.asarray(SPACING)
        pairwise = cdist(pa, pb)
        d_ab, d_ba = pairwise.min(axis=1), pairwise.min(axis=0)
        assert hd95(a, b, SPACING) == pytest.approx(_hd95(d_ab, d_ba), rel=1e-6)
        assert asd(a, b, SPACING) == pytest.approx(_asd(d_ab, d_ba), rel=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_random_blobs_match_kdtree_and_uncropped_medpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (40, 36, 32)
    a = _random_blob(shape, rng, fill=0.15)
    b = _random_blob(shape, rng, fill=0.25)
    if seed == 0:  # a mask touching the edge of the volume has surface there (border_value=0)
        a[:, :, 0] |= b[:, :, 1]
    got_hd95, got_asd = hd95(a, b, SPACING), asd(a, b, SPACING)
    for reference in (_kdtree_distances, _medpy_uncropped):
        d_ab, d_ba = reference(a, b, SPACING)
        assert got_hd95 == pytest.approx(_hd95(d_ab, d_ba), rel=1e-5)
        assert got_asd == pytest.approx(_asd(d_ab, d_ba), rel=1e-5)
    assert hd95_and_asd(a, b, SPACING) == pytest.approx((got_hd95, got_asd))


def test_small_objects_in_a_large_volume_match_the_uncropped_reference() -> None:
    # The crop is most aggressive here: two small objects far from the volume's edges.
    a = np.zeros((48, 40, 36), bool)
    b = np.zeros_like(a)
    a[10:14, 20:23, 5:9] = True
    b[30:33, 8:14, 25:27] = True
    b[31, 10, 28] = True  # a lone voxel is all surface
    d_ab, d_ba = _medpy_uncropped(a, b, SPACING)
    got_ab, got_ba = surface_distances(a, b, SPACING)
    np.testing.assert_allclose(np.sort(got_ab), np.sort(d_ab), rtol=1e-6)
    np.testing.assert_allclose(np.sort(got_ba), np.sort(d_ba), rtol=1e-6)


def test_distances_are_symmetric() -> None:
    rng = np.random.default_rng(7)
    a = _random_blob((30, 30, 30), rng, 0.2)
    b = _random_blob((30, 30, 30), rng, 0.3)
    assert hd95(a, b, SPACING) == pytest.approx(hd95(b, a, SPACING))
    assert asd(a, b, SPACING) == pytest.approx(asd(b, a, SPACING))
    assert hd95(a, a, SPACING) == 0.0 and asd(a, a, SPACING) == 0.0


def test_empty_mask_rules_use_the_volume_diagonal() -> None:
    shape, spacing = (10, 20, 30), (0.5, 1.0, 2.0)
    diagonal = np.sqrt(5.0**2 + 20.0**2 + 60.0**2)
    assert volume_diagonal(shape, spacing) == pytest.approx(diagonal)
    empty = np.zeros(shape, bool)
    full = np.zeros(shape, bool)
    full[2:5, 3:9, 4:8] = True
    for metric in (hd95, asd):
        assert metric(empty, empty, spacing) == 0.0
        assert metric(empty, full, spacing) == pytest.approx(diagonal)
        assert metric(full, empty, spacing) == pytest.approx(diagonal)
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(empty, full, spacing)


def test_bad_inputs_are_rejected() -> None:
    a = np.ones((4, 4, 4), bool)
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        asd(a, a, (1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="3D"):
        hd95(np.ones((4, 4), bool), np.ones((4, 4), bool), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="same shape"):
        asd(a, np.ones((4, 4, 3), bool), (1.0, 1.0, 1.0))
