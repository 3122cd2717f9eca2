"""Loaders of every format against the raw arrays the fixtures wrote, and format detection."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from svldrl.data import BRATS_MODALITY, Dataset, detect_format, load_case, load_dataset
from svldrl.data.intensity import CT_WINDOW


def _expected_mri(channel: np.ndarray) -> np.ndarray:
    """Independent MRI normalisation: percentiles of the non-zero voxels (fixtures have a zero background)."""
    body = channel[channel != 0] if (channel == 0).mean() > 0.1 else channel.ravel()
    low, high = np.percentile(body, [0.5, 99.5])
    return np.clip((channel - low) / (high - low), 0, 1)


def test_msd_ct_single_channel(msd_dataset, tiny):
    ds = load_dataset(msd_dataset)
    assert isinstance(ds, Dataset) and ds.format == "msd" and ds.name == "tiny-3d"
    assert ds.case_ids == ("case_000", "case_001", "case_002") and len(ds) == 3
    assert ds.labels.names == ("background", "organ") and ds.labels.mode == "classes"
    assert ds.modality == ("CT",)
    case = ds.get("case_001")
    assert case.image.shape == (1, 20, 18, 16) and case.image.dtype == np.float32
    hu = tiny.case_image((20, 18, 16), 1, "CT").astype(np.float32)
    np.testing.assert_allclose(case.image[0], np.clip((hu - CT_WINDOW[0]) / 400.0, 0, 1), atol=1e-6)
    np.testing.assert_array_equal(case.label, tiny.case_label((20, 18, 16), 1))
    assert case.label.dtype == np.uint8
    np.testing.assert_allclose(case.affine, tiny.msd_affine, atol=1e-6)
    assert case.spacing == pytest.approx((0.8, 0.9, 2.5))
    assert case.meta["image_files"] == (msd_dataset / "imagesTr" / "case_001.nii.gz",)
    assert case.meta["label_file"] == msd_dataset / "labelsTr" / "case_001.nii.gz"
    assert case.meta["nifti_header"] is not None


def test_msd_4d_file_channels_come_first(msd_4d_dataset, tiny):
    ds = load_dataset(msd_4d_dataset)
    assert ds.modality == ("T2", "ADC")
    case = ds[2]
    assert case.case_id == "case_002" and case.image.shape == (2, 20, 18, 16)
    for c, name in enumerate(("T2", "ADC")):
        np.testing.assert_allclose(case.image[c], _expected_mri(tiny.case_image((20, 18, 16), 2, name)), atol=1e-5)
    np.testing.assert_array_equal(case.label, tiny.case_label((20, 18, 16), 2))


def test_nnunet_v2_channel_files_are_grouped(nnunet_dataset, tiny):
    ds = load_dataset(nnunet_dataset)
    assert ds.format == "msd" and ds.case_ids == ("case_000", "case_001", "case_002")
    assert ds.labels.names == ("background", "organ")
    case = ds.get("case_000")
    assert case.image.shape == (2, 20, 18, 16)
    assert [p.name for p in case.meta["image_files"]] == ["case_000_0000.nii.gz", "case_000_0001.nii.gz"]
    np.testing.assert_allclose(case.image[1], _expected_mri(tiny.case_image((20, 18, 16), 0, "ADC")), atol=1e-5)
    # the same case loaded from one of its channel files
    single = load_case(nnunet_dataset / "imagesTr" / "case_000_0001.nii.gz")
    np.testing.assert_array_equal(single.image, case.image)
    np.testing.assert_array_equal(single.label, case.label)


def test_nnunet_v2_regions_from_labels(make_msd, tiny):
    root = make_msd("regions", layout="v2", modality=("MRI",), label_names=("background", "a", "b"))
    description = json.loads((root / "dataset.json").read_text())
    description["labels"] = {"background": 0, "whole": [1, 2], "inner": 2}
    description["regions_class_order"] = [1, 2]
    (root / "dataset.json").write_text(json.dumps(description))
    ds = load_dataset(root)
    assert ds.labels.mode == "regions" and ds.labels.names == ("whole", "inner")
    case = ds[0]
    raw = tiny.case_label((20, 18, 16), 0, n_classes=3)
    np.testing.assert_array_equal(case.label[0], raw > 0)
    np.testing.assert_array_equal(case.label[1], raw == 2)


def test_brats_regions_and_four_channels(brats_dataset, tiny):
    ds = load_dataset(brats_dataset)
    assert ds.format == "brats" and ds.case_ids == ("BraTS2021_00000", "BraTS2021_00001")
    assert ds.labels.names == ("WT", "TC", "ET") and ds.labels.mode == "regions"
    assert ds.modality == BRATS_MODALITY
    case = ds[1]
    assert case.image.shape == (4, 20, 18, 16) and case.label.shape == (3, 20, 18, 16)
    raw = tiny.brats_label((20, 18, 16), 1)
    np.testing.assert_array_equal(case.label[0], np.isin(raw, [1, 2, 4]))
    np.testing.assert_array_equal(case.label[1], np.isin(raw, [1, 4]))
    np.testing.assert_array_equal(case.label[2], raw == 4)
    assert case.label[2].sum() > 0  # the fixture's enhancing core is not empty
    np.testing.assert_allclose(case.image[3], _expected_mri(tiny.case_image((20, 18, 16), 13, "MRI")), atol=1e-5)
    folder = load_case(brats_dataset / "BraTS2021_00001")
    np.testing.assert_array_equal(folder.label, case.label)


def test_la_h5_file_or_folder(la_dataset, tiny):
    ds = load_dataset(la_dataset)
    assert ds.format == "la-h5" and ds.name == "la" and ds.modality == ("MRI",)
    assert ds.case_ids == ("LA_CASE_0", "LA_CASE_1", "LA_CASE_2")
    case = ds.get("LA_CASE_1")
    z = tiny.la_image((20, 18, 16), 1)
    low, high = np.percentile(z, [0.5, 99.5])  # no zero background: whole volume
    np.testing.assert_allclose(case.image[0], np.clip((z - low) / (high - low), 0, 1), atol=1e-5)
    np.testing.assert_array_equal(case.label, tiny.case_label((20, 18, 16), 1))
    assert case.spacing == (0.625, 0.625, 0.625)
    np.testing.assert_array_equal(case.affine, np.diag([0.625, 0.625, 0.625, 1.0]))
    by_file = load_case(la_dataset / "LA_CASE_1" / "mri_norm2.h5")
    by_folder = load_case(la_dataset / "LA_CASE_1")
    assert by_file.case_id == by_folder.case_id == "LA_CASE_1"
    np.testing.assert_array_equal(by_file.image, case.image)


def test_dataset_caches_and_names_unknown_cases(la_dataset):
    ds = load_dataset(la_dataset)
    assert ds.get("LA_CASE_0") is ds[0]  # cached
    assert ds.load("LA_CASE_0") is not ds[0]  # load bypasses the cache
    assert [c.case_id for c in ds] == list(ds.case_ids)
    with pytest.raises(KeyError, match=r"no case 'LA_CASE_l'.*Did you mean 'LA_CASE_\d'"):
        ds.get("LA_CASE_l")
    with pytest.raises(IndexError):
        ds[3]
    uncached = load_dataset(la_dataset, cache=False)
    assert uncached[0] is not uncached[0]


def test_detect_format(msd_dataset, brats_dataset, la_dataset, tmp_path):
    assert detect_format(msd_dataset) == "msd"
    assert detect_format(brats_dataset) == "brats"
    assert detect_format(la_dataset) == "la-h5"
    (tmp_path / "junk" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="junk: not a recognised data set"):
        detect_format(tmp_path / "junk")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing")


def test_lone_nifti_needs_a_modality(msd_dataset, tmp_path):
    lone = tmp_path / "scan.nii.gz"
    shutil.copy(msd_dataset / "imagesTr" / "case_000.nii.gz", lone)
    with pytest.raises(ValueError, match="scan.nii.gz: no dataset.json.*pass modality"):
        load_case(lone)
    case = load_case(lone, modality=("CT",))
    assert case.label is None and case.case_id == "scan"
    np.testing.assert_array_equal(case.image, load_dataset(msd_dataset)[0].image)


def test_loader_errors_name_the_file(msd_dataset, tiny):
    label_path = msd_dataset / "labelsTr" / "case_000.nii.gz"
    nib.save(nib.Nifti1Image(np.full((20, 18, 16), 3, dtype=np.uint8), tiny.msd_affine), label_path)
    with pytest.raises(ValueError, match=r"case_000.nii.gz: label values \[3\]"):
        load_dataset(msd_dataset).get("case_000")
    (msd_dataset / "labelsTr" / "case_001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="case_001.nii.gz: file not found"):
        load_dataset(msd_dataset).get("case_001")


@pytest.mark.realdata
def test_real_la2018_two_cases(la2018_root):
    ds = load_dataset(la2018_root)
    assert ds.format == "la-h5" and len(ds) == 80
    listed = (la2018_root / "train.list").read_text().split()
    assert sorted(listed) == list(ds.case_ids)
    for case_id in ds.case_ids[:2]:
        case = ds.get(case_id)
        assert case.image.shape[0] == 1 and case.image.shape[3] == 88
        assert case.image.min() == 0.0 and case.image.max() == 1.0
        assert set(np.unique(case.label).tolist()) == {0, 1}
        assert 0.01 < case.label.mean() < 0.2  # the atrium is a modest share of the crop
        assert case.meta["image_files"][0].name == "mri_norm2.h5"
