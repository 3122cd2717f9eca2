#!/usr/bin/env bash
# Issue 6: how far apart are two runs of the SAME method on the SAME noisy labels?
# The baseline under 50 % MT noise (noisy labels of seed 0) trained several times:
#   - again with the table's exact settings (1 thread): must reproduce its run bit for bit;
#   - with 2 threads: the same computation in another floating-point summation order;
#   - with training seeds 2 and 3 (noise.seed stays 0: the same noisy labels, other init and patches).
# Their per-case differences are the null distribution of a paired method comparison.
# Run from the project root: bash experiments/la/replicates.sh   (about 20 min of one core)
set -euo pipefail
data=${1:-../shared/data/la2018}
common=(--method baseline --noise mt --noise-ratio 0.5 --set data.spacing=2.0 --set data.patch_size=32
        --set data.val_fraction=0.25 --set data.test_fraction=0.0 --set optim.epochs=40
        --set optim.iters_per_epoch=8 --set val_every=0 --set sw_overlap=0.25 --set noise.seed=0 -q)
train() {  # OUT SEED THREADS: skipped when finished, resumed when interrupted
  [ -f "runs/replicates/$1/metrics.json" ] && return 0
  svldrl train "$data" "${common[@]}" --seed "$2" --set num_threads="$3" --out "runs/replicates/$1" --resume
}
train baseline__mt-0.5__seed0__threads1 0 1
train baseline__mt-0.5__seed0__threads2 0 2
train baseline__mt-0.5__seed2__noise0 2 1
train baseline__mt-0.5__seed3__noise0 3 1

# Keep what the paired tests need in the repository (the run folders hold checkpoints and stay out of git).
out=docs/results/la-replicates
mkdir -p "$out"
python - "$out/cases.csv" <<'PY'
import csv, json, sys
from pathlib import Path
rows = []
for metrics in sorted(Path("runs/replicates").glob("*/metrics.json")):
    for case_id, per_class in sorted(json.loads(metrics.read_text())["per_case"].items()):
        for cls, v in per_class.items():
            rows.append({"run": metrics.parent.name, "case_id": case_id, "class": cls,
                         **{m: v[m] for m in ("dice", "iou", "hd95", "asd")}})
with open(sys.argv[1], "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
PY
runs=(seed0__threads1 seed0__threads2 seed2__noise0 seed3__noise0)
for i in "${!runs[@]}"; do
  for j in "${!runs[@]}"; do
    if [ "$i" -lt "$j" ]; then
      python experiments/la/paired.py "$out/cases.csv" "baseline__mt-0.5__${runs[$i]}" "baseline__mt-0.5__${runs[$j]}" --exact
    fi
  done
done | tee "$out/pairs.txt"
