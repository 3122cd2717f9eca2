"""Writers: MSD round trip, copies with new labels in each format, masks on the reference grid."""

import filecmp

import h5py
import nibabel as nib
import numpy as np
import pytest

from svldrl.data import (
    LabelSpec,
    copy_dataset_with_labels,
    load_case,
    load_dataset,
    make_phantoms,
    resample_case,
    write_msd_dataset,
    write_nifti_like,
)
from svldrl.data.files import atomic_path


def _new_label(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < 0.3).astype(np.uint8)


def test_write_msd_dataset_round_trip_keeps_geometry(msd_4d_dataset, tmp_path):
    source = load_dataset(msd_4d_dataset)
    cases = list(source)
    out = write_msd_dataset(cases, source.labels, tmp_path / "copy", "copy", modality=source.modality)
    again = load_dataset(out)
    assert again.case_ids == source.case_ids and again.modality == ("T2", "ADC") and again.name == "copy"
    for a, b in zip(source, again, strict=True):
        np.testing.assert_allclose(b.affine, a.affine, atol=1e-6)
        assert b.spacing == pytest.approx(a.spacing)
        np.testing.assert_array_equal(b.label, a.label)
        np.testing.assert_allclose(b.image, a.image, atol=0.02)  # percentile re-normalisation of [0, 1] data
    with pytest.raises(FileExistsError, match="not empty"):
        write_msd_dataset(cases, source.labels, out, "copy")


def test_write_msd_dataset_regions_use_the_paint_order(brats_dataset, tmp_path):
    source = load_dataset(brats_dataset)
    out = write_msd_dataset(list(source), source.labels, tmp_path / "brats_msd", "b", modality=source.modality)
    again = load_dataset(out)
    assert again.labels == source.labels
    np.testing.assert_array_equal(again[0].label, source[0].label)


@pytest.mark.parametrize("fixture", ["msd_dataset", "msd_4d_dataset", "nnunet_dataset", "brats_dataset", "la_dataset"])
def test_copy_dataset_with_labels_in_its_own_format(fixture, request, tmp_path):
    root = request.getfixturevalue(fixture)
    source = load_dataset(root)
    first, second = source.case_ids[:2]
    label_shape = source[0].label.shape
    new = {first: _new_label(label_shape, 0)}
    if source.labels.mode == "regions":  # nested regions survive the round trip through the label map
        new[first][1] &= new[first][0]
        new[first][2] &= new[first][1]
    out = copy_dataset_with_labels(source, new, tmp_path / "copy")
    copy = load_dataset(out)
    assert copy.format == source.format and copy.case_ids == source.case_ids and copy.labels == source.labels
    np.testing.assert_array_equal(copy.get(first).label, new[first])
    np.testing.assert_array_equal(copy.get(second).label, source.get(second).label)
    for case_id in source.case_ids:
        np.testing.assert_array_equal(copy.get(case_id).image, source.get(case_id).image)
        if source.format != "la-h5":  # NIfTI images: the very same bytes
            for a, b in zip(source.paths[case_id].images, copy.paths[case_id].images, strict=True):
                assert filecmp.cmp(a, b, shallow=False)
    if source.format == "la-h5":  # the z-scored image inside the h5 file is copied as stored
        with h5py.File(source.paths[first].images[0]) as a, h5py.File(copy.paths[first].images[0]) as b:
            np.testing.assert_array_equal(a["image"][()], b["image"][()])
            assert b["image"].compression == a["image"].compression
        assert (out / "train.list").read_text() == (root / "train.list").read_text()
    else:
        label_file = copy.paths[first].label
        np.testing.assert_allclose(nib.load(label_file).affine, nib.load(source.paths[first].label).affine)


def test_copy_rejects_unknown_ids_wrong_shapes_and_its_source(la_dataset, tmp_path):
    source = load_dataset(la_dataset)
    with pytest.raises(ValueError, match=r"cases \['nope'\] are not in data set"):
        copy_dataset_with_labels(source, {"nope": np.zeros((20, 18, 16), np.uint8)}, tmp_path / "a")
    with pytest.raises(ValueError, match=r"labels_by_id\['LA_CASE_0'\]: shape \(4, 4, 4\)"):
        copy_dataset_with_labels(source, {"LA_CASE_0": np.zeros((4, 4, 4), np.uint8)}, tmp_path / "b")
    with pytest.raises(ValueError, match="onto its own source"):
        copy_dataset_with_labels(source, {}, la_dataset)
    assert not (tmp_path / "a").exists()  # checked before anything is written


def test_write_nifti_like_uses_the_reference_grid(msd_dataset, tmp_path):
    case = load_dataset(msd_dataset)[0]
    mask = case.label.astype(bool)
    path = write_nifti_like(mask, case, tmp_path / "pred.nii.gz")
    written = nib.load(path)
    np.testing.assert_allclose(written.affine, case.affine, atol=1e-6)
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), case.label)
    assert written.header.get_zooms()[:3] == pytest.approx(case.spacing)


def test_write_nifti_like_after_resampling_needs_the_original_shape(msd_dataset, tmp_path):
    case = load_dataset(msd_dataset)[0]
    resampled = resample_case(case, (1.6, 1.8, 2.5))
    with pytest.raises(ValueError, match="not the reference's original shape"):
        write_nifti_like(resampled.label, resampled, tmp_path / "p.nii.gz")
    path = write_nifti_like(case.label, resampled, tmp_path / "p.nii.gz")  # original grid: fine
    np.testing.assert_allclose(nib.load(path).affine, case.affine, atol=1e-6)


def test_write_nifti_like_paints_brats_regions_and_la_gets_its_affine(brats_dataset, la_dataset, tmp_path):
    brats = load_dataset(brats_dataset)[0]
    path = write_nifti_like(brats.label, brats, tmp_path / "seg.nii.gz")
    original = np.asanyarray(nib.load(brats.meta["label_file"]).dataobj)
    np.testing.assert_array_equal(np.asanyarray(nib.load(path).dataobj), original)
    la = load_case(la_dataset / "LA_CASE_0")
    written = nib.load(write_nifti_like(la.label, la, tmp_path / "la.nii.gz"))
    np.testing.assert_array_equal(written.affine, np.diag([0.625, 0.625, 0.625, 1.0]))


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_write_msd_dataset_rejects_mixed_channels(tmp_path):
    cases = make_phantoms(2, 16, seed=0)
    cases[1].image = np.concatenate([cases[1].image, cases[1].image])
    with pytest.raises(ValueError, match="phantom_001: 2 channels, expected 1"):
        write_msd_dataset(cases, LabelSpec(("background", "organ")), tmp_path / "m", "m")
