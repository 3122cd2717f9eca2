"""Wall time and scores of ``svldrl demo`` under other settings (issue 17): the whole run_demo, one after another.

    python benchmarks/bench_demo.py                       # before (full heads, full estimator), today, today + bf16

Each variant writes its own demo folder under a temporary directory and prints its time, table and
verdict. Run it on a quiet machine: the times are whole-command wall clocks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from svldrl.experiments.demo import DemoSettings, run_demo

VARIANTS = {
    "before": {"heads": "full", "gradient_estimator": "full"},
    "today": {},
    "today+bf16": {"precision": "bf16"},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            start = time.perf_counter()
            report = run_demo(Path(tmp) / name, replace(DemoSettings(), **VARIANTS[name]), progress=False)
            print(f"{name}: {time.perf_counter() - start:.1f} s\n{report['table']}\n{report['verdict']}\n", flush=True)


if __name__ == "__main__":
    main()
