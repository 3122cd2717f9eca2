"""experiments/la/correction_timing.py: what one ADELE correction would do with a given network."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from cli_helpers import load_script
from svldrl.config import CPU, merge
from svldrl.data import make_phantoms
from svldrl.inference import predict_probabilities
from svldrl.models import build_network

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "correction_timing.py"


def test_report_pools_iou_and_leaves_labels_alone_when_nothing_is_confident():
    module = load_script(SCRIPT, "la_correction_timing")
    cfg = merge(CPU, {"data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]}})
    torch_net = build_network(cfg.model, 1, 2).eval()
    cases = []
    for i, phantom in enumerate(make_phantoms(2, 16, seed=1)):
        clean = phantom.label > 0
        noisy = np.zeros_like(clean) if i == 0 else clean  # case 0: everything erased
        cases.append(SimpleNamespace(image=phantom.image, clean=clean, noisy=noisy,
                                     group="corrupted" if i == 0 else "untouched"))
    line = module.snapshot_report(torch_net, cases, cfg, tau=0.999999)
    # an untrained network is never that confident: the corrected labels are the noisy ones
    corrected = dict(re.findall(r"(\w+): pred [\d.]+ vol [\d.]+ corrected ([\d.]+)", line))
    assert float(corrected["corrupted"]) == 0.0 and float(corrected["untouched"]) == 100.0
    inter = union = 0
    for case in cases:  # the IoU is pooled over the cases, against the noisy labels
        pred = predict_probabilities(torch_net, case.image, (16, 16, 16), overlap=cfg.sw_overlap).argmax(0) > 0
        inter, union = inter + (pred & case.noisy).sum(), union + (pred | case.noisy).sum()
    assert line.startswith(f"whole-volume IoU to noisy {inter / union:.3f};")
