"""PatchSampler: shapes, pos_fraction, exact reproducibility per (seed, epoch), padding, alignment."""

import numpy as np
import pytest
import torch

from svldrl.config import DataConfig
from svldrl.data import Case, LabelSpec, PatchSampler, load_dataset

BINARY = LabelSpec(("background", "organ"))


def _case(shape=(48, 48, 48), blob=None, case_id="c", image=None) -> Case:
    label = np.zeros(shape, dtype=np.uint8)
    if blob is not None:
        label[blob] = 1
    if image is None:
        image = np.random.default_rng(0).random((1, *shape)).astype(np.float32)
    return Case(image, label, (1.0, 1.0, 1.0), case_id)


def _cfg(**kw) -> DataConfig:
    base = {"patch_size": (16, 16, 16), "pos_fraction": 0.5, "flips": True, "intensity_jitter": 0.1}
    return DataConfig(**{**base, **kw})


def _batches(sampler: PatchSampler, epoch: int, n: int, bs: int) -> list[dict]:
    return list(sampler.epoch(epoch, n, bs))


def test_shapes_dtypes_and_one_hot(phantom_cases):
    sampler = PatchSampler(phantom_cases, BINARY, _cfg(), seed=0)
    batches = _batches(sampler, 0, 3, 2)
    assert len(batches) == 3
    for batch in batches:
        assert batch["image"].shape == (2, 1, 16, 16, 16) and batch["image"].dtype == torch.float32
        assert batch["label"].shape == (2, 2, 16, 16, 16) and batch["label"].dtype == torch.float32
        torch.testing.assert_close(batch["label"].sum(1), torch.ones(2, 16, 16, 16))
        assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
        assert len(batch["case_id"]) == 2 and set(batch["case_id"]) <= set(sampler.case_ids)


def test_regions_give_binary_channels(brats_dataset):
    ds = load_dataset(brats_dataset)
    sampler = PatchSampler(list(ds), ds.labels, _cfg(patch_size=(8, 8, 8), pos_fraction=1.0), seed=0)
    batch = next(sampler.epoch(0, 1, 3))
    assert batch["image"].shape == (3, 4, 8, 8, 8) and batch["label"].shape == (3, 3, 8, 8, 8)
    label = batch["label"]
    assert set(label.unique().tolist()) <= {0.0, 1.0} and label[:, 0].sum() > 0
    assert torch.all(label[:, 1] <= label[:, 0]) and torch.all(label[:, 2] <= label[:, 1])  # nested WT > TC > ET


@pytest.mark.parametrize("pos_fraction", [0.0, 0.3, 1.0])
def test_pos_fraction_is_honoured(pos_fraction):
    """A 2^3 blob in a 48^3 volume: a background-centred 8^3 patch almost never contains it."""
    case = _case(blob=(slice(23, 25),) * 3)
    sampler = PatchSampler([case], BINARY, _cfg(patch_size=(8, 8, 8), pos_fraction=pos_fraction), seed=1)
    hits = [bool(b["label"][i, 1].any()) for b in sampler.epoch(0, 50, 8) for i in range(8)]
    share = np.mean(hits)  # 400 patches: binomial sd <= 0.025
    expected = pos_fraction + (1 - pos_fraction) * (8**3 * 8 / 48**3)  # chance a background patch hits the blob
    assert abs(share - expected) < 0.07, (share, expected)
    if pos_fraction == 1.0:
        assert share == 1.0


def test_same_seed_and_epoch_same_batches_whatever_came_before(phantom_cases):
    a = PatchSampler(phantom_cases, BINARY, _cfg(samples_per_volume=2), seed=5)
    b = PatchSampler(phantom_cases, BINARY, _cfg(samples_per_volume=2), seed=5)
    _batches(b, 0, 4, 2)  # b has already run epochs 0 and 1, a has not
    _batches(b, 1, 4, 2)
    for x, y in zip(_batches(a, 2, 4, 2), _batches(b, 2, 4, 2), strict=True):
        torch.testing.assert_close(x["image"], y["image"], rtol=0, atol=0)
        torch.testing.assert_close(x["label"], y["label"], rtol=0, atol=0)
        assert x["case_id"] == y["case_id"]
    short = _batches(a, 2, 2, 2)  # batch b depends on (seed, epoch, b), not on n_batches
    for x, y in zip(short, _batches(a, 2, 4, 2)[:2], strict=True):
        assert torch.equal(x["image"], y["image"])


def test_different_epochs_and_seeds_differ(phantom_cases):
    sampler = PatchSampler(phantom_cases, BINARY, _cfg(), seed=5)
    e0, e1 = _batches(sampler, 0, 2, 2), _batches(sampler, 1, 2, 2)
    assert not torch.equal(e0[0]["image"], e1[0]["image"])
    other = _batches(PatchSampler(phantom_cases, BINARY, _cfg(), seed=6), 0, 2, 2)
    assert not torch.equal(e0[0]["image"], other[0]["image"])


@pytest.mark.parametrize("sampler_kind", ["mixed", "per_case"])
def test_each_pass_visits_every_case(phantom_cases, sampler_kind):
    sampler = PatchSampler(phantom_cases, BINARY, _cfg(samples_per_volume=2, sampler=sampler_kind), seed=0)
    assert sampler.batches_per_pass(2) == 4
    ids = [i for b in sampler.epoch(3, 4, 2) for i in b["case_id"]]
    assert sorted(ids) == sorted(sampler.case_ids * 2)
    same_case_batches = [ids[k] == ids[k + 1] for k in range(0, 8, 2)]
    if sampler_kind == "per_case":  # the old sampler: samples_per_volume patches of one case side by side
        assert all(same_case_batches)
    else:  # the default: every batch draws its patches from different cases
        assert not any(same_case_batches)


def test_mixed_batches_hold_different_cases_over_many_epochs(phantom_cases):
    sampler = PatchSampler(phantom_cases, BINARY, _cfg(samples_per_volume=2), seed=3)
    for epoch in range(20):
        for batch in sampler.epoch(epoch, 8, 3):
            assert len(set(batch["case_id"])) == 3, batch["case_id"]


def test_mixed_batches_repeat_a_case_only_when_there_are_fewer_cases_than_slots(phantom_cases):
    sampler = PatchSampler(phantom_cases[:2], BINARY, _cfg(), seed=0)
    for batch in sampler.epoch(0, 3, 3):
        assert set(batch["case_id"]) == {c.case_id for c in phantom_cases[:2]}


def test_two_stream_batches_hold_k_trusted_patches(phantom_cases):
    trusted = [phantom_cases[0].case_id]
    sampler = PatchSampler(phantom_cases, BINARY, _cfg(trusted_per_batch=1), seed=0, trusted_ids=trusted)
    for epoch in range(5):
        for batch in sampler.epoch(epoch, 6, 3):
            ids = batch["case_id"]
            assert ids[0] in trusted and not set(ids[1:]) & set(trusted)
            assert len(set(ids[1:])) == 2
    with pytest.raises(ValueError, match="trusted_per_batch"):
        next(sampler.epoch(0, 1, 1))  # no room for the other cases


def test_two_stream_needs_trusted_and_other_cases(phantom_cases):
    with pytest.raises(ValueError, match="trusted_per_batch=1 needs trusted and other cases"):
        PatchSampler(phantom_cases, BINARY, _cfg(trusted_per_batch=1), seed=0, trusted_ids=())


@pytest.mark.parametrize("kw", [{}, {"trusted_per_batch": 1}])
def test_batches_are_a_function_of_seed_and_epoch(phantom_cases, kw):
    """What a resume relies on: epoch e's batches do not depend on the epochs drawn before."""
    trusted = [phantom_cases[1].case_id] if kw else ()
    first = PatchSampler(phantom_cases, BINARY, _cfg(**kw), seed=5, trusted_ids=trusted)
    for epoch in range(3):
        list(first.epoch(epoch, 4, 2))
    after = list(first.epoch(3, 4, 2))
    fresh = list(PatchSampler(phantom_cases, BINARY, _cfg(**kw), seed=5, trusted_ids=trusted).epoch(3, 4, 2))
    for a, b in zip(after, fresh, strict=True):
        assert a["case_id"] == b["case_id"]
        torch.testing.assert_close(a["image"], b["image"])


def test_small_volumes_are_padded_with_background():
    blob = (slice(3, 7), slice(4, 8), slice(1, 5))
    small = _case(shape=(10, 12, 6), blob=blob, image=np.ones((1, 10, 12, 6), dtype=np.float32))
    sampler = PatchSampler([small], BINARY, _cfg(patch_size=(16, 16, 16), flips=False, intensity_jitter=0.0), seed=0)
    batch = next(sampler.epoch(0, 1, 1))
    image, label = batch["image"][0, 0], batch["label"][0]
    assert image.shape == (16, 16, 16)
    assert image.sum() == 10 * 12 * 6  # the whole volume, zeros around it
    assert label[1].sum() == 4 * 4 * 4 and torch.all(label.sum(0) == 1)  # padding counts as background
    assert image[0, 0, 0] == 0.0 and label[0, 0, 0, 0] == 1.0


def test_image_and_label_stay_aligned_under_flips():
    blob = (slice(10, 30), slice(5, 15), slice(20, 26))
    label_image = _case(blob=blob).label[None].astype(np.float32)  # image == label: misalignment shows
    case = _case(blob=blob, image=label_image)
    sampler = PatchSampler([case], BINARY, _cfg(flips=True, intensity_jitter=0.0), seed=3)
    for batch in sampler.epoch(0, 10, 4):
        assert torch.equal(batch["image"][:, 0], batch["label"][:, 1])


def test_intensity_jitter_scales_and_shifts_each_channel():
    flat = _case(image=np.full((2, 48, 48, 48), 0.5, dtype=np.float32))
    sampler = PatchSampler([flat], BINARY, _cfg(flips=False, intensity_jitter=0.1), seed=0)
    values = []
    for batch in sampler.epoch(0, 5, 4):
        for patch in batch["image"]:
            for channel in patch:
                assert torch.all(channel == channel.flatten()[0])  # one scale/shift per channel
                values.append(float(channel.flatten()[0]))
    assert min(values) >= 0.5 * 0.9 - 0.1 - 1e-6 and max(values) <= 0.5 * 1.1 + 0.1 + 1e-6
    assert np.std(values) > 0.02


def test_bad_inputs_fail_at_construction():
    with pytest.raises(ValueError, match="case c: has no label"):
        PatchSampler([_case().with_label(None)], BINARY, _cfg(), seed=0)
    with pytest.raises(ValueError, match=r"case c: label values \[2\] >= 2 classes"):
        PatchSampler([_case(blob=(slice(0, 2),) * 3).with_label(np.full((48, 48, 48), 2, np.uint8))], BINARY, _cfg(), 0)
    with pytest.raises(ValueError, match="pos_fraction must be in"):
        PatchSampler([_case()], BINARY, _cfg(pos_fraction=1.5), seed=0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        PatchSampler([_case()], BINARY, _cfg(), seed=-1)
