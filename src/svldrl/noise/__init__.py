"""Label noise for training cases: morphological (MT), SFDA and border noise, case selection, the manifest.

Noisy labels are for training only; validation and test always use clean labels (method.md).
"""

from svldrl.noise.border import BorderRecord, border_noise_with_record
from svldrl.noise.corrupt import (
    NOISES,
    NoiseFunction,
    border_noise,
    corrupt_labels,
    mt_noise,
    write_noisy_dataset,
)
from svldrl.noise.labels import label_dice
from svldrl.noise.manifest import MANIFEST_NAME, CaseNoise, NoiseManifest
from svldrl.noise.morphological import (
    K_RANGE,
    MAX_DRAWS,
    NoiseRecord,
    apply_operation,
    cube_dilation,
    cube_erosion,
    morphological_noise,
    morphological_noise_with_record,
)
from svldrl.noise.selection import n_noisy_cases, select_noisy_cases
from svldrl.noise.sfda import DomainShift, Predictor, SourceTrainer, sfda_noise

__all__ = [
    "K_RANGE",
    "BorderRecord",
    "border_noise",
    "border_noise_with_record",
    "MANIFEST_NAME",
    "MAX_DRAWS",
    "NOISES",
    "CaseNoise",
    "DomainShift",
    "NoiseFunction",
    "NoiseManifest",
    "NoiseRecord",
    "Predictor",
    "SourceTrainer",
    "apply_operation",
    "corrupt_labels",
    "cube_dilation",
    "cube_erosion",
    "label_dice",
    "morphological_noise",
    "morphological_noise_with_record",
    "mt_noise",
    "n_noisy_cases",
    "select_noisy_cases",
    "sfda_noise",
    "write_noisy_dataset",
]
