"""Inference: sliding-window prediction (segmentation decoder, optional greedy refinement), back to the
input's grid, NIfTI writing."""

from svldrl.inference.predict import (
    labels_from_probabilities,
    predict_case,
    predict_probabilities,
    refine_state,
    to_original_grid,
)
from svldrl.inference.writing import write_prediction

__all__ = [
    "labels_from_probabilities",
    "predict_case",
    "predict_probabilities",
    "refine_state",
    "to_original_grid",
    "write_prediction",
]
