"""Data: the Case currency, loaders for every supported format, phantoms, validation, preparation."""

from svldrl.data.brats import BRATS_CHANNELS, BRATS_MODALITY, load_brats_case
from svldrl.data.case import BINARY, Case, LabelSpec
from svldrl.data.dataset import FORMATS, Dataset, detect_format, load_case, load_dataset
from svldrl.data.files import CaseFiles, read_nifti
from svldrl.data.intensity import CT_WINDOW, MRI_PERCENTILES, intensity_window, normalise_image
from svldrl.data.la import LA_SPACING, load_la_case
from svldrl.data.labels import BRATS_CODEC, LabelCodec
from svldrl.data.msd import MsdInfo, read_dataset_json
from svldrl.data.phantom import PHANTOM_LABELS, make_phantom, make_phantoms, write_phantom_dataset
from svldrl.data.prepare import prepare_cases, resample_case, resample_to_shape
from svldrl.data.sampling import PatchSampler, TrustedBatches
from svldrl.data.split import Split, split_cases
from svldrl.data.validate import (
    DataError,
    DataWarning,
    Problem,
    check_case_files,
    check_dataset,
    format_problems,
    has_blocking,
    open_checked_dataset,
    warn_problems,
)
from svldrl.data.writers import copy_dataset_with_labels, write_msd_dataset, write_nifti_like

__all__ = [
    "BINARY",
    "BRATS_CHANNELS",
    "BRATS_CODEC",
    "BRATS_MODALITY",
    "CT_WINDOW",
    "FORMATS",
    "LA_SPACING",
    "MRI_PERCENTILES",
    "PHANTOM_LABELS",
    "Case",
    "CaseFiles",
    "DataError",
    "DataWarning",
    "Dataset",
    "LabelCodec",
    "LabelSpec",
    "MsdInfo",
    "PatchSampler",
    "TrustedBatches",
    "Problem",
    "Split",
    "check_case_files",
    "check_dataset",
    "copy_dataset_with_labels",
    "detect_format",
    "format_problems",
    "has_blocking",
    "intensity_window",
    "load_brats_case",
    "load_case",
    "load_dataset",
    "load_la_case",
    "make_phantom",
    "make_phantoms",
    "normalise_image",
    "open_checked_dataset",
    "prepare_cases",
    "read_dataset_json",
    "read_nifti",
    "resample_case",
    "resample_to_shape",
    "split_cases",
    "warn_problems",
    "write_msd_dataset",
    "write_nifti_like",
    "write_phantom_dataset",
]
