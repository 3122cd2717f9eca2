"""``svldrl demo``: the whole story on built-in data, in a few minutes on a laptop CPU.

Phantoms -> 50 % of the training labels corrupted by morphological noise -> the baseline and SVL-DRL
trained with the same backbone and budget -> both scored on clean test labels -> a report folder
saying plainly which did better.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from svldrl._io import atomic_write, write_json, write_text
from svldrl.config import TrainConfig, get_preset
from svldrl.data import load_dataset, write_phantom_dataset
from svldrl.experiments.figures import example_slices, training_curves
from svldrl.experiments.methods import method_info
from svldrl.experiments.pipeline import RunResult, train_run
from svldrl.experiments.tables import Table, TableRow

DEMO_METHODS = ("baseline", "svl-drl")


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo: chosen so both methods train in under 2 minutes on 2 CPU cores."""

    n_cases: int = 12
    size: int = 40
    noise_ratio: float = 0.5
    seed: int = 0
    epochs: int = 30
    iters_per_epoch: int = 6
    methods: tuple[str, ...] = DEMO_METHODS
    heads: str = "light"
    """model.heads of both runs (the baseline uses only the segmentation decoder either way). Light heads and the
    sampled estimator made the demo 1.7x faster with the same scores (benchmarks/README.md, session 9)."""
    gradient_estimator: str = "sampled"
    """SVL-DRL's method_options.gradient_estimator."""
    precision: str = "fp32"
    """bf16 made it 2.7x faster on an AVX512-BF16 CPU, but moved the baseline's Dice by 2 points: not used."""

    def config(self, method: str) -> TrainConfig:
        cpu = get_preset("cpu")
        return replace(
            cpu,
            method=method,
            seed=self.seed,
            data=replace(cpu.data, patch_size=(32, 32, 32), val_fraction=0.17, test_fraction=0.34),
            model=replace(cpu.model, heads=self.heads),
            optim=replace(cpu.optim, epochs=self.epochs, iters_per_epoch=self.iters_per_epoch),
            noise=replace(cpu.noise, kind="mt", ratio=self.noise_ratio, seed=self.seed),
            method_options=(
                {"gradient_estimator": self.gradient_estimator}
                if method == "svl-drl" and self.gradient_estimator != "full" else {}
            ),
            precision=self.precision,
            val_every=10,
        )


def run_demo(out: Path, settings: DemoSettings = DemoSettings(), progress: bool = True) -> dict[str, Any]:
    """Run the demo into ``out`` (a finished run is reused, so an interrupted demo resumes)."""
    start = time.perf_counter()
    data = out / "data"
    if not (data / "dataset.json").exists():
        write_phantom_dataset(data, n=settings.n_cases, size=settings.size, seed=settings.seed)
    results: dict[str, RunResult] = {}
    for method in settings.methods:
        run_dir = out / "runs" / method
        cfg = settings.config(method)
        if (run_dir / "metrics.json").exists():
            import json

            results[method] = RunResult(run_dir, json.loads((run_dir / "metrics.json").read_text()))
            continue
        if progress:
            size = f"{settings.n_cases} phantoms of {settings.size}^3"
            print(f"[demo] training {method} ({cfg.optim.epochs} epochs, {size})")
        results[method] = train_run(data, cfg, out=run_dir, runs_root=out / "runs", resume=True, progress=progress)
    report = write_report(out, data, results, settings, time.perf_counter() - start)
    return report


def verdict(rows: Sequence[TableRow]) -> str:
    """One honest sentence: which method has the higher mean Dice, and whether the gap exceeds the spread."""
    by_dice = sorted(rows, key=lambda r: r.mean["dice"], reverse=True)
    best, other = by_dice[0], by_dice[1]
    gap = (best.mean["dice"] - other.mean["dice"]) * 100
    spread = max(best.std["dice"], other.std["dice"]) * 100
    strength = "clearly" if gap > spread else "only slightly (within the spread over test cases)"
    return (
        f"{best.method} did better on mean Dice: {best.mean['dice'] * 100:.2f} % vs {other.mean['dice'] * 100:.2f} % "
        f"for {other.method}, {strength}; gap {gap:.2f} points, largest std {spread:.2f} points."
    )


def write_report(out: Path, data: Path, results: dict[str, RunResult], settings: DemoSettings, seconds: float) -> dict:
    from svldrl.training import read_log

    rows = [
        TableRow(
            "MT-Noise 50%",
            method_info(m)["label"],
            r.metrics["summary"]["mean"]["mean"],
            r.metrics["summary"]["std"]["mean"],
            r.metrics["summary"]["n_cases"],
        )
        for m, r in results.items()
    ]
    table = Table(
        rows,
        caption=f"Phantoms, {settings.noise_ratio:.0%} of training labels with MT noise; "
        f"mean (± std over {rows[0].n} clean test cases)",
    )
    curves = training_curves({m: read_log(r.run_dir) for m, r in results.items()}, out / "training_curves.png")
    pictures = slice_pictures(out, data, results)
    sentence = verdict(rows) if len(rows) > 1 else ""
    lines = [
        "# svldrl demo",
        "",
        table.to_markdown(),
        "",
        f"**Verdict.** {sentence}",
        "",
        f"Total time: {seconds:.0f} s.",
        "",
        f"![training curves]({curves.name})",
        "",
    ]
    lines += [f"![{m}]({p.name})" for m, p in pictures.items()]
    write_text(out / "report.md", "\n".join(lines) + "\n")
    summary = {
        "verdict": sentence,
        "seconds": round(seconds, 1),
        "settings": settings.__dict__,
        "methods": {m: r.metrics["summary"] for m, r in results.items()},
    }
    write_json(out / "results.json", summary)
    csv_rows = table.to_csv_rows()

    def write(fh: Any) -> None:
        writer = csv.DictWriter(fh, fieldnames=list(csv_rows[0]))
        writer.writeheader()
        writer.writerows(csv_rows)

    atomic_write(out / "results.csv", write)
    return {"table": table.to_markdown(), "verdict": sentence, "seconds": seconds, "report": out / "report.md"}


def slice_pictures(out: Path, data: Path, results: dict[str, RunResult]) -> dict[str, Path]:
    """Per method: a corrupted training case (image, clean, noisy label, prediction) -- shows whether the
    model learned the noise."""
    import json

    from svldrl.data import prepare_cases
    from svldrl.inference import predict_case
    from svldrl.noise import MANIFEST_NAME
    from svldrl.training import load_trained

    dataset = load_dataset(data)
    pictures = {}
    for method, result in results.items():
        manifest = json.loads((result.run_dir / MANIFEST_NAME).read_text())
        corrupted = [c["case_id"] for c in manifest["cases"] if c["corrupted"]]
        case = dataset.get(corrupted[0])
        noisy = _noisy_label(result.run_dir, case.case_id)
        net, cfg, labels = load_trained(result.run_dir)
        pred = predict_case(net, prepare_cases([case], cfg.data)[0], labels, cfg)
        pictures[method] = example_slices(
            case.image[0], case.label > 0, noisy, {method_info(method)["label"]: pred > 0}, out / f"slices_{method}.png"
        )
    return pictures


def _noisy_label(run_dir: Path, case_id: str) -> Any:
    """The noisy label the run trained on (from the frozen noise cache the run points to)."""
    import json

    import numpy as np

    from svldrl.experiments.pipeline import NOISY_LABELS_FILE

    path = Path(json.loads((run_dir / NOISY_LABELS_FILE).read_text())["path"])
    with np.load(path) as npz:
        return npz[case_id] > 0
