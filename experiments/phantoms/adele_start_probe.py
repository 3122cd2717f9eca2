"""When does ADELE start correcting on a phantom run? (issue 16: it must not start before its IoU curve saturates.)

8 phantoms of 32^3, the first 4 with labels dilated by 2 voxels; ADELE with the reference's unit
(one IoU point per pass over the training cases, here one epoch of 4 steps), single scale; prints
the start epoch per class, the correction epochs and the foreground IoU per point.

Measured in session 9 with the rule of defaults version 2 (``start_rule=shifted``): correction of
the foreground started at point 3, IoU 0.51, with the curve still rising to 0.93. Explained against
the reference in session 10 (Kangningthu/ADELE, ``label_update_epoch`` and ``if_update``): our x
axis put point k at k + 1, so three points fixed the three-parameter fit exactly, and we compared
the point count where the reference compares the newest point's 0-based index. With the
reference's rule (``start_rule=reference``, the default from version 3) the same run starts at
point 6, IoU 0.52 of 0.92: the curve sits at 0.50-0.53 for points 3-6, and a plateau of several
points is what the reference's rule reads as saturation (it does so too; a curve that keeps rising
after its knee waits, ``tests/baselines/test_adele.py::test_the_reference_rule_waits_out_a_fast_first_rise``).

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
