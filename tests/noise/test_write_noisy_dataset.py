"""write_noisy_dataset end to end on a tiny phantom MSD data set: copy, labels, manifest, split, errors."""

from pathlib import Path

import numpy as np
import pytest

from svldrl.config import DataConfig
from svldrl.data import LabelSpec, load_dataset, make_phantoms, split_cases, write_msd_dataset
from svldrl.noise import MANIFEST_NAME, NoiseManifest, corrupt_labels, write_noisy_dataset
from svldrl.registry import UnknownNameError

DATA_CFG = DataConfig(val_fraction=0.25, test_fraction=0.0, split_seed=3)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cases = make_phantoms(8, 32, seed=0)
    return write_msd_dataset(cases, LabelSpec(("background", "organ")), tmp_path_factory.mktemp("src") / "ph", "ph")


def test_copy_has_noisy_training_labels_clean_validation_labels_and_the_manifest(source: Path, tmp_path: Path) -> None:
    out = write_noisy_dataset(source, "mt", 0.5, 1, tmp_path / "noisy", data_cfg=DATA_CFG)
    manifest = NoiseManifest.load(out / MANIFEST_NAME)
    original, copy = load_dataset(source), load_dataset(out)
    split = split_cases(original.case_ids, 0.25, 0.0, 3)
    assert copy.case_ids == original.case_ids
    assert [c.case_id for c in manifest.cases] == list(split.train)
    assert manifest.n_corrupted == 3 and manifest.options["split"] == split.to_dict()  # 0.5 * 6 training cases
    expected, _ = corrupt_labels([original.get(i) for i in split.train], "mt", 0.5, 1)
    for case_id in original.case_ids:
        clean, written = original.get(case_id).label, copy.get(case_id).label
        np.testing.assert_array_equal(copy.get(case_id).image, original.get(case_id).image)
        if case_id in manifest.corrupted_ids:
            np.testing.assert_array_equal(written, expected[case_id])
            assert not np.array_equal(written, clean)
        else:
            np.testing.assert_array_equal(written, clean)
    assert set(manifest.corrupted_ids).isdisjoint(split.val)


def test_sfda_options_reach_the_source_trainer(source: Path, tmp_path: Path) -> None:
    def train_source(source_cases):
        return lambda case: case.image[0] > 0.5

    out = write_noisy_dataset(source, "sfda", 0.5, 0, tmp_path / "sfda", data_cfg=DATA_CFG, train_source=train_source)
    manifest = NoiseManifest.load(out / MANIFEST_NAME)
    copy = load_dataset(out)
    assert manifest.kind == "sfda" and manifest.n_corrupted == 3
    for case_id in manifest.corrupted_ids:
        case = copy.get(case_id)
        np.testing.assert_array_equal(case.label, (case.image[0] > 0.5).astype(case.label.dtype))


def test_bad_arguments_fail_before_any_work(source: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'mt'"):
        write_noisy_dataset(source, "mtt", 0.5, 0, tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        write_noisy_dataset(tmp_path / "nowhere", "mt", 0.5, 0, tmp_path / "b")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="full"):
        write_noisy_dataset(source, "mt", 0.5, 0, tmp_path / "full")
    with pytest.raises(ValueError, match="ratio"):
        write_noisy_dataset(source, "mt", 2.0, 0, tmp_path / "c")
