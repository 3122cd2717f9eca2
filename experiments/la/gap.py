"""Each method's row against the reference rows: the share of the noisy-to-clean gap it recovers.

For every method under a noise (e.g. ``mt-0.5``), paired by seed with the clean-label baseline
(``baseline__clean``) and the noisy baseline (``baseline__<noise>``):

    gap share = (method - noisy baseline) / (clean baseline - noisy baseline)

1 means the method trains as well on noisy labels as the baseline on clean ones, 0 that it does no
better than the baseline on the same noisy labels, a negative share that it does worse. The share
is a ratio of means over seeds; its 95 % interval is a percentile bootstrap over seeds (the run is
the unit), and the paired differences to both reference rows come with their t intervals, as
``paired.py`` prints them.

    python experiments/la/gap.py docs/results/la-reference/cases.csv --noise mt-0.5
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import t as student_t

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import load_sources  # noqa: E402

RUN = re.compile(r"^(?P<method>.+)__(?P<noise>[^_]+(?:-[0-9.]+)?)__seed(?P<seed>\d+)$")


def run_means(
    sources: list[Path], prefixes: tuple[str, ...] | None = None
) -> dict[tuple[str, str], dict[int, float]]:
    """(method slug, noise part) -> seed -> mean Dice over the run's held-out cases, in points."""
    out: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for name, cases in load_sources(sources, prefixes=prefixes).items():
        match = RUN.match(name)
        if match:
            out[(match["method"], match["noise"])][int(match["seed"])] = 100.0 * float(np.mean(list(cases.values())))
    return out


def t_interval(values: np.ndarray) -> tuple[float, float, float]:
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(student_t.ppf(0.975, len(values) - 1)) * float(values.std(ddof=1)) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def gap_share(method: np.ndarray, noisy: np.ndarray, clean: np.ndarray, draws: int = 10000) -> tuple[float, ...]:
    """The share and its 95 % percentile-bootstrap interval over seeds (arrays aligned by seed)."""
    share = float((method.mean() - noisy.mean()) / (clean.mean() - noisy.mean()))
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(method), size=(draws, len(method)))
    gaps = clean[picks].mean(1) - noisy[picks].mean(1)
    valid = np.abs(gaps) > 1e-9
    boot = (method[picks].mean(1) - noisy[picks].mean(1))[valid] / gaps[valid]
    low, high = np.percentile(boot, [2.5, 97.5]) if boot.size else (float("nan"), float("nan"))
    return share, float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a compare cases.csv, or a runs folder (runs/la2018)")
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="SOURCE",
                        help="another cases.csv or runs folder whose runs join the first's (repeatable)")
    parser.add_argument("--noise", default="mt-0.5", help="noise part of the run names, e.g. mt-0.5, sfda-0.5")
    parser.add_argument("--baseline", default="baseline", help="run-name prefix of the reference method")
    parser.add_argument("--method", action="append", default=None, metavar="PREFIX",
                        help="only this method's rows (run-name prefix; repeatable); default: every method")
    args = parser.parse_args()
    prefixes = None if args.method is None else tuple(f"{m}__" for m in (args.baseline, *args.method))
    means = run_means([args.source, *args.also], prefixes)
    clean, noisy = means.get((args.baseline, "clean"), {}), means.get((args.baseline, args.noise), {})
    if not clean or not noisy:
        raise SystemExit(f"need {args.baseline}__clean and {args.baseline}__{args.noise} runs in {args.source}")
    print("| method (noise) | seeds | Dice | vs noisy baseline (95 % CI) | vs clean baseline (95 % CI) "
          "| gap share (95 % CI) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    rows = [(args.baseline, "clean")] + sorted(k for k in means if k[1] == args.noise)
    for method, noise in rows:
        seeds = sorted(set(means[(method, noise)]) & set(clean) & set(noisy))
        if not seeds:
            continue
        m = np.array([means[(method, noise)][s] for s in seeds])
        c = np.array([clean[s] for s in seeds])
        n = np.array([noisy[s] for s in seeds])
        cells = [f"{method} ({noise})", str(len(seeds)), f"{m.mean():.2f} ± {m.std(ddof=1) if len(m) > 1 else 0:.2f}"]
        for ref in (n, c):
            mean, low, high = t_interval(m - ref)
            cells.append(f"{mean:+.2f} ({low:+.2f} to {high:+.2f})")
        share, low, high = gap_share(m, n, c)
        cells.append(f"{share:+.2f} ({low:+.2f} to {high:+.2f})")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
