"""LabelCodec: file values <-> Case labels, checked against MONAI's BraTS converter and by hand."""

import numpy as np
import pytest
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

from svldrl.data import BRATS_CODEC, LabelCodec, LabelSpec
from svldrl.data.labels import class_codec, unique_values


def test_brats_decode_matches_monai_converter_reordered_to_wt_tc_et():
    rng = np.random.default_rng(0)
    label_map = rng.choice(np.array([0, 1, 2, 4], dtype=np.uint8), size=(6, 7, 8))
    ours = BRATS_CODEC.decode(label_map)
    monai_tc_wt_et = np.asarray(ConvertToMultiChannelBasedOnBratsClasses()(label_map[None]))
    assert ours.dtype == np.uint8 and ours.shape == (3, 6, 7, 8)
    np.testing.assert_array_equal(ours, monai_tc_wt_et[[1, 0, 2]].astype(np.uint8))


def test_brats_encode_inverts_decode_on_label_maps():
    rng = np.random.default_rng(1)
    label_map = rng.choice(np.array([0, 1, 2, 4], dtype=np.uint8), size=(5, 5, 5))
    np.testing.assert_array_equal(BRATS_CODEC.encode(BRATS_CODEC.decode(label_map)), label_map)


def test_encode_of_non_nested_regions_paints_in_order():
    regions = np.zeros((3, 1, 1, 3), dtype=np.uint8)
    regions[0, 0, 0, 0] = 1  # WT only -> 2
    regions[2, 0, 0, 1] = 1  # ET outside WT and TC -> still 4 (painted last)
    regions[1, 0, 0, 2] = 1  # TC only -> 1
    assert BRATS_CODEC.encode(regions).ravel().tolist() == [2, 4, 1]


def test_file_values_and_bad_values_are_named():
    assert BRATS_CODEC.file_values == {0, 1, 2, 4}
    with pytest.raises(ValueError, match=r"seg.nii.gz: label values \[3\] outside"):
        BRATS_CODEC.decode(np.array([[[0, 3]]], dtype=np.uint8), source="seg.nii.gz")
    with pytest.raises(ValueError, match=r"values \[2\] outside"):
        class_codec(("background", "organ")).decode(np.array([[[0, 1, 2]]]))


def test_classes_decode_float_files_and_reject_fractions():
    codec = class_codec(("background", "a", "b"))
    decoded = codec.decode(np.array([[[0.0, 2.0, 1.0]]], dtype=np.float32))
    assert decoded.dtype == np.uint8 and decoded.ravel().tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="non-integer"):
        unique_values(np.array([0.0, 0.5]))


def test_codec_rejects_inconsistent_definitions():
    with pytest.raises(ValueError, match="need as many region_values"):
        LabelCodec(LabelSpec(("WT", "TC"), "regions"), region_values=((1,),))
    with pytest.raises(ValueError, match="for mode='regions' only"):
        LabelCodec(LabelSpec(("bg", "fg")), region_values=((1,),))
    with pytest.raises(ValueError, match="no paint order"):
        LabelCodec(LabelSpec(("A",), "regions"), region_values=((1, 2),)).encode(np.zeros((1, 2, 2, 2)))
