"""check_dataset: each kind of bad input is reported against the right file, with the right severity."""

import json
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from svldrl.data import Problem, check_dataset, format_problems, has_blocking


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, format_problems(problems)
    return problems[0]


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("fixture", ["msd_dataset", "msd_4d_dataset", "nnunet_dataset", "brats_dataset", "la_dataset"])
def test_clean_fixtures_have_no_problems(fixture, request):
    assert check_dataset(request.getfixturevalue(fixture)) == []


def test_truncated_gzip_image(msd_dataset):
    path = msd_dataset / "imagesTr" / "case_001.nii.gz"
    _truncate(path)
    problem = _only(check_dataset(msd_dataset))
    assert problem.path == path and problem.blocking
    assert "cannot read NIfTI file" in problem.message
    assert str(path) in str(problem)


def test_truncated_h5_file(la_dataset):
    path = la_dataset / "LA_CASE_2" / "mri_norm2.h5"
    _truncate(path, 0.6)
    problem = _only(check_dataset(la_dataset))
    assert problem.path == path and problem.blocking and "cannot read h5 file" in problem.message


def test_label_shape_mismatch(msd_dataset, tiny):
    path = msd_dataset / "labelsTr" / "case_000.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 18, 15), np.uint8), tiny.msd_affine), path)
    problem = _only(check_dataset(msd_dataset))
    assert problem.path == path and problem.blocking and "label shape (20, 18, 15) differs" in problem.message


def test_label_affine_mismatch(msd_dataset, tiny):
    path = msd_dataset / "labelsTr" / "case_002.nii.gz"
    shifted = tiny.msd_affine.copy()
    shifted[0, 3] += 5.0
    nib.save(nib.Nifti1Image(tiny.case_label(tiny.shape, 2), shifted), path)
    problem = _only(check_dataset(msd_dataset))
    assert problem.path == path and problem.blocking and "affine" in problem.message


def test_channel_file_geometry_mismatch(nnunet_dataset, tiny):
    path = nnunet_dataset / "imagesTr" / "case_001_0001.nii.gz"
    nib.save(nib.Nifti1Image(tiny.case_image(tiny.shape, 1, "ADC"), np.diag([1.0, 1.0, 1.0, 1.0])), path)
    problems = check_dataset(nnunet_dataset)
    assert any(p.path == path and "affine" in p.message and p.blocking for p in problems), format_problems(problems)


def test_nan_intensities(msd_4d_dataset, tiny):
    path = msd_4d_dataset / "imagesTr" / "case_001.nii.gz"
    image = np.stack([tiny.case_image(tiny.shape, 1, m) for m in ("T2", "ADC")], axis=-1)
    image[3, 4, 5, 1] = np.nan
    image[0, 0, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(image, tiny.msd_affine), path)
    problem = _only(check_dataset(msd_4d_dataset))
    assert problem.path == path and problem.blocking and problem.message.startswith("2 non-finite")


def test_nan_in_la_h5(la_dataset, tiny):
    path = la_dataset / "LA_CASE_0" / "mri_norm2.h5"
    with h5py.File(path, "r+") as f:
        image = f["image"][()]
        image[1, 1, 1] = np.nan
        f["image"][...] = image
    problem = _only(check_dataset(la_dataset))
    assert problem.path == path and "non-finite" in problem.message


def test_label_value_outside_the_expected_set(la_dataset, msd_dataset, tiny):
    h5 = la_dataset / "LA_CASE_1" / "mri_norm2.h5"
    with h5py.File(h5, "r+") as f:
        label = f["label"][()]
        label[0, 0, 0] = 3
        f["label"][...] = label
    problem = _only(check_dataset(la_dataset))
    assert (
        problem.path == h5
        and problem.blocking
        and "label values [3] outside the expected set [0, 1]" in problem.message
    )
    nifti = msd_dataset / "labelsTr" / "case_000.nii.gz"
    label = tiny.case_label(tiny.shape, 0)
    label[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(label, tiny.msd_affine), nifti)
    assert "label values [3]" in _only(check_dataset(msd_dataset)).message


def test_brats_label_three_is_invalid_but_four_is_fine(brats_dataset, tiny):
    path = brats_dataset / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz"
    label = tiny.brats_label(tiny.shape, 0)
    label[label == 4] = 3  # BraTS 2023 numbering in a 2021 data set
    nib.save(nib.Nifti1Image(label, np.eye(4)), path)
    assert "label values [3] outside the expected set [0, 1, 2, 4]" in _only(check_dataset(brats_dataset)).message


def test_empty_label_is_a_warning(msd_dataset, tiny):
    path = msd_dataset / "labelsTr" / "case_001.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(tiny.shape, np.uint8), tiny.msd_affine), path)
    problems = check_dataset(msd_dataset)
    problem = _only(problems)
    assert problem.path == path and not problem.blocking and "empty" in problem.message
    assert not has_blocking(problems)


def test_channel_count_mismatch_against_dataset_json(msd_4d_dataset, nnunet_dataset, tiny):
    path = msd_4d_dataset / "imagesTr" / "case_002.nii.gz"
    nib.save(nib.Nifti1Image(tiny.case_image(tiny.shape, 2, "T2"), tiny.msd_affine), path)  # 1 channel of 2
    problem = _only(check_dataset(msd_4d_dataset))
    assert problem.path == path and problem.blocking and "1 image channels, expected 2" in problem.message
    (nnunet_dataset / "imagesTr" / "case_001_0001.nii.gz").unlink()  # nnU-Net: a channel file missing
    problem = _only(check_dataset(nnunet_dataset))
    assert problem.path.name == "case_001_0000.nii.gz" and "1 image channels, expected 2" in problem.message


def test_missing_files(brats_dataset, msd_dataset):
    (brats_dataset / "BraTS2021_00001" / "BraTS2021_00001_t1ce.nii.gz").unlink()
    (brats_dataset / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz").unlink()
    problems = check_dataset(brats_dataset)
    assert {p.path.name for p in problems} == {"BraTS2021_00001_t1ce.nii.gz", "BraTS2021_00000_seg.nii.gz"}
    assert all(p.blocking and "file not found" in p.message for p in problems)
    (msd_dataset / "labelsTr" / "case_000.nii.gz").rename(msd_dataset / "labelsTr" / "stray.nii.gz")
    messages = {(p.path.name, p.blocking, p.message) for p in check_dataset(msd_dataset)}
    assert ("case_000.nii.gz", True, "file not found") in messages
    assert ("stray.nii.gz", False, "label file without an image in imagesTr") in messages


def test_unreadable_dataset_json_and_unknown_layout(msd_dataset, tmp_path):
    (msd_dataset / "dataset.json").write_text("{not json")
    problem = _only(check_dataset(msd_dataset))
    assert problem.path.name == "dataset.json" and "cannot read JSON" in problem.message
    (tmp_path / "empty").mkdir()
    assert "not a recognised data set" in _only(check_dataset(tmp_path / "empty")).message


def test_num_training_mismatch_is_a_warning(msd_dataset):
    description = json.loads((msd_dataset / "dataset.json").read_text())
    description["numTraining"] = 5
    (msd_dataset / "dataset.json").write_text(json.dumps(description))
    problem = _only(check_dataset(msd_dataset))
    assert not problem.blocking and "numTraining is 5 but imagesTr holds 3" in problem.message


def test_single_cases_can_be_checked(la_dataset, brats_dataset, msd_dataset):
    assert check_dataset(la_dataset / "LA_CASE_0") == []
    assert check_dataset(la_dataset / "LA_CASE_0" / "mri_norm2.h5") == []
    assert check_dataset(brats_dataset / "BraTS2021_00000") == []
    image = msd_dataset / "imagesTr" / "case_000.nii.gz"
    assert check_dataset(image) == []
    _truncate(image)
    assert "cannot read" in _only(check_dataset(image)).message


def test_format_problems_lists_each_and_sums_up():
    problems = [Problem(Path("a.nii.gz"), "broken"), Problem(Path("b.nii.gz"), "empty label", blocking=False)]
    text = format_problems(problems)
    assert text.splitlines() == [
        "ERROR a.nii.gz: broken",
        "warning b.nii.gz: empty label",
        "1 blocking problem(s), 1 warning(s)",
    ]
    assert format_problems([]) == "no problems found"


@pytest.mark.slow
@pytest.mark.realdata
def test_real_la2018_is_clean_and_each_file_read_once(la2018_root, monkeypatch):
    """Each of the 80 files is read once (about 4 s on 2 idle cores; timed in no test, see benchmarks/)."""
    import svldrl.data.validate as validate

    reads: list = []
    original = validate.read_la
    monkeypatch.setattr(validate, "read_la", lambda path: reads.append(path) or original(path))
    problems = check_dataset(la2018_root)
    assert not problems, format_problems(problems)  # no blocking problem, and no warning either
    assert len(reads) == len(set(reads)) == 80
