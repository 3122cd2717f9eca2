"""Metrics on boolean masks (medpy conventions): Dice, IoU, HD95, ASD, per-class evaluation, summaries.

Not losses: these take thresholded masks and report distances in mm. Empty-mask rules are written in
each function's docstring (method.md "Metrics").
"""

from svldrl.metrics.evaluate import METRICS, Summary, evaluate_case, summarise
from svldrl.metrics.overlap import dice, iou
from svldrl.metrics.surface import asd, hd95, hd95_and_asd, surface_distances, volume_diagonal

__all__ = [
    "METRICS",
    "Summary",
    "asd",
    "dice",
    "evaluate_case",
    "hd95",
    "hd95_and_asd",
    "iou",
    "summarise",
    "surface_distances",
    "volume_diagonal",
]
