"""When does ADELE start correcting on a phantom run? (issue 16: it must not start before its IoU curve saturates.)

8 phantoms of 32^3, the first 4 with labels dilated by 2 voxels; ADELE with the reference's unit
(one IoU point per pass over the training cases, here one epoch of 4 steps), single scale; prints
the start epoch per class, the correction epochs and the foreground IoU per point.

Measured when written (session 9): correction of the foreground started at point 3, IoU 0.51,
with the curve still rising to 0.93: the rule fires at the knee of the first fast rise on this
curve. Not yet explained against the reference (which fits over a fixed horizon on VOC).

    python experiments/phantoms/adele_start_probe.py      # about a minute on one core
"""

import json
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from svldrl.baselines import ADELETrainer
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms

cases = make_phantoms(8, 32, seed=4)
train = [c.with_label(ndimage.binary_dilation(c.label > 0, iterations=2).astype(np.uint8)) if i < 4 else c
         for i, c in enumerate(cases)]
cfg = merge(CPU, {"method": "adele", "data": {"patch_size": [32, 32, 32], "samples_per_volume": 1},
                  "model": {"channels": [8, 16, 32]}, "optim": {"epochs": 40, "iters_per_epoch": 4}, "val_every": 0,
                  "num_threads": 1, "method_options": {"scales": [1.0], "flips": False}})
tmp = Path(tempfile.mkdtemp())
t = ADELETrainer(cfg, train, [], PHANTOM_LABELS, tmp, progress=False)
print("epochs per point", t.epochs_per_point)
t.fit()
h = json.loads((tmp / "adele.json").read_text())
iou = np.array([[row[1] for row in p] for p in h["iou"]], dtype=float)
print("start", h["start_epoch"], "corrections", h["corrections"])
print("fg iou per point", np.round(iou[:, 0], 3) if iou.ndim == 2 else iou)
