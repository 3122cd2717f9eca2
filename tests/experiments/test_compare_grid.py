"""``svldrl compare`` on tiny phantoms (32^3, one or two epochs): the grid, its tables and carried rows,
job arrays (--list/--index, --noise-only, the SLURM script), superseded rows, and the refusals that come
before any work."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import invoke, runner
from svldrl.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grid") / "phantoms"
    invoke("phantom", root, "--n", "6", "--size", "32", "--seed", "1")
    return root


def tiny_experiment(tmp_path: Path, phantoms: Path, methods: str, seeds: str) -> Path:
    """A two-epoch compare grid on the phantoms: MT 50 % plus a clean baseline row."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: tiny\ndata: {phantoms}\npreset: cpu\n"
        "set: [optim.epochs=2, optim.iters_per_epoch=1, data.patch_size=32, val_every=2, data.test_fraction=0.2]\n"
        f"methods: {methods}\nnoise: [mt]\nratios: [0.5]\nseeds: {seeds}\nclean_baseline: true\n"
        "runs_root: runs\nout: results\n"
    )
    return exp


def test_compare_runs_grid_skips_finished_and_writes_tables(phantoms: Path, tmp_path: Path) -> None:
    methods = "[baseline, {method: svl-drl, label: 'SVL-DRL w/o WS', set: [stages.skip_warmup=true]}]"
    exp = tiny_experiment(tmp_path, phantoms, methods, "[0]")
    invoke("compare", exp, "-q")
    table = (tmp_path / "results" / "table.md").read_text()
    assert "Baseline" in table and "clean" in table and "MT-Noise 50%" in table
    assert (tmp_path / "results" / "table.tex").exists() and (tmp_path / "results" / "table.csv").exists()
    assert "w/o WS" in (tmp_path / "results" / "ablation.md").read_text()
    cost = (tmp_path / "results" / "cost.md").read_text()
    assert "parameters at inference" in cost and "| - |" not in cost  # every run records its count
    stamps = {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("metrics.json")}
    assert len(stamps) == 3
    with (tmp_path / "results" / "cases.csv").open(newline="") as fh:
        case_rows = [r for r in csv.DictReader(fh) if r["class"] == "mean"]
    for metrics_path in stamps:  # cases.csv holds each run's per-case scores, as metrics.json has them
        per_case = json.loads(metrics_path.read_text())["per_case"]
        rows = {r["case_id"]: float(r["dice"]) for r in case_rows if r["run"] == metrics_path.parent.name}
        assert rows == pytest.approx({c: v["mean"]["dice"] for c, v in per_case.items()}, abs=1e-12)
    (environment,) = json.loads((tmp_path / "results" / "grid.json").read_text())["environments"]
    assert environment["runs"] == 3 and environment["packages"]["torch"].startswith("2.")
    invoke("compare", exp, "-q")  # everything finished: nothing retrained
    assert {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("metrics.json")} == stamps
    # two of the three run folders gone (a new machine): their rows are carried from cases.csv and
    # runs.csv, so the tables come out as they were, and compare does not train them again
    results = {p.name: p.read_bytes() for p in (tmp_path / "results").glob("*.[cm][sd]*")}
    one_run = next(iter(stamps)).parent
    partial = tmp_path / "partial"
    shutil.copytree(one_run, partial / one_run.parent.name / one_run.name)
    invoke("compare", exp, "-q", "--runs-root", partial)
    assert sorted(p.parent.name for p in partial.rglob("metrics.json")) == [one_run.name]  # nothing retrained
    assert {p.name: p.read_bytes() for p in (tmp_path / "results").glob("*.[cm][sd]*")} == results
    states = [line.split("\t")[1] for line in invoke("compare", exp, "--list", "--runs-root", partial).splitlines()]
    assert sorted(states) == ["carried", "carried", "finished"]
    assert json.loads((tmp_path / "results" / "grid.json").read_text())["carried"] == 2
    carried_index = states.index("carried")  # an array over the whole grid leaves a carried run alone
    assert "carried" in invoke("compare", exp, "-q", "--index", carried_index, "--runs-root", partial)
    assert sorted(p.parent.name for p in partial.rglob("metrics.json")) == [one_run.name]
    result = runner.invoke(app, ["compare", str(exp), "--retrain", "--runs-root", str(partial)])
    assert result.exit_code != 0 and "--retrain goes with --index" in result.output
    # tables made before runs.csv existed, then every folder gone: the cost table and environments of
    # that time are frozen once and kept, unchanged, by every later call
    before = json.loads((tmp_path / "results" / "grid.json").read_text())["environments"]
    (tmp_path / "results" / "runs.csv").unlink()
    cost_then = (tmp_path / "results" / "cost.md").read_text()
    for _ in range(2):
        invoke("compare", exp, "-q", "--tables-only", "--runs-root", tmp_path / "nowhere")
        record = json.loads((tmp_path / "results" / "grid.json").read_text())
        assert record["environments"] == [] and record["environments_before_runs_csv"] == before
        assert (tmp_path / "results" / "cost_before_runs_csv.md").read_text() == cost_then
        assert cost_then.strip() in (tmp_path / "results" / "cost.md").read_text()
    for name in ("table.md", "table.csv", "cases.csv"):  # the rows themselves never changed
        assert (tmp_path / "results" / name).read_bytes() == results[name]
    # without cases.csv nothing can be carried: the tables made from three runs are not replaced by one
    (tmp_path / "results" / "cases.csv").unlink()
    result = runner.invoke(app, ["compare", str(exp), "-q", "--tables-only", "--runs-root", str(partial)])
    assert result.exit_code != 0 and "made from 3 finished runs, but only 1" in str(result.exception)
    assert "Baseline" in (tmp_path / "results" / "table.md").read_text()


def test_a_run_folder_that_replaced_committed_rows_stays_on_record(phantoms: Path, tmp_path: Path) -> None:
    """A retrained run whose scores differ from the committed ``cases.csv`` is named on stderr and in
    ``grid.json``, and stays named there after later calls, when ``cases.csv`` already holds its scores."""
    exp = tiny_experiment(tmp_path, phantoms, "[baseline]", "[0]")
    invoke("compare", exp, "-q")
    assert "replaced_carried_runs" not in json.loads((tmp_path / "results" / "grid.json").read_text())
    cases = tmp_path / "results" / "cases.csv"
    with cases.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    retrained = rows[0]["run"]
    for row in rows:  # the committed rows of one run, as another training of it scored
        if row["run"] == retrained:
            row["dice"] = str(float(row["dice"]) / 2)
    with cases.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = runner.invoke(app, ["compare", str(exp), "-q", "--tables-only"])
    assert result.exit_code == 0 and f"{retrained}: its run folder replaces the committed rows" in result.output
    assert json.loads((tmp_path / "results" / "grid.json").read_text())["replaced_carried_runs"] == [retrained]
    invoke("compare", exp, "-q", "--tables-only")  # cases.csv now holds the folder's scores; the record stays
    assert json.loads((tmp_path / "results" / "grid.json").read_text())["replaced_carried_runs"] == [retrained]


def test_a_grid_carries_the_runs_it_shares_with_a_carry_from_grid_only_where_the_settings_match(
    phantoms: Path, tmp_path: Path
) -> None:
    """Table 1's reference rows are reference.yaml's runs: on a new machine they come back from its
    committed results, but never under the same name with other settings."""
    for folder in ("reference", "table1", "longer", "bad"):
        (tmp_path / folder).mkdir()
    reference = tiny_experiment(tmp_path / "reference", phantoms, "[baseline]", "[0]")
    invoke("compare", reference, "-q")  # baseline clean and MT, seed 0
    with (tmp_path / "reference" / "results" / "cases.csv").open(newline="") as fh:
        committed = {(r["run"], r["case_id"]): r["dice"] for r in csv.DictReader(fh) if r["class"] == "mean"}

    def sharing(folder: str, methods: str) -> Path:
        exp = tiny_experiment(tmp_path / folder, phantoms, methods, "[0]")
        shared_root = f"runs_root: {tmp_path / 'reference' / 'runs'}"  # one runs folder: one training per name
        exp.write_text(exp.read_text().replace("runs_root: runs", shared_root) + f"carry_from: [{reference}]\n")
        return exp

    gone = tmp_path / "new-machine"  # no run folders at all
    table1 = sharing("table1", "[baseline, {method: baseline, label: Other, set: [optim.lr=0.002]}]")
    states = {line.split("\t")[3].rsplit("/", 1)[1]: line.split("\t")[1]
              for line in invoke("compare", table1, "--list", "--runs-root", gone).splitlines()}
    assert states == {"baseline__clean__seed0": "carried", "baseline__mt-0.5__seed0": "carried",
                      "other__mt-0.5__seed0": "pending"}  # fmt: skip
    invoke("compare", table1, "-q", "--index", "1", "--runs-root", gone)  # an array job leaves it alone
    assert not gone.exists()
    invoke("compare", table1, "-q", "--tables-only", "--runs-root", gone)
    with (tmp_path / "table1" / "results" / "cases.csv").open(newline="") as fh:
        carried = {(r["run"], r["case_id"]): r["dice"] for r in csv.DictReader(fh) if r["class"] == "mean"}
    assert carried == committed  # the same rows, to the digit
    record = json.loads((tmp_path / "table1" / "results" / "grid.json").read_text())
    assert record["carried_from"] == {"../../reference/results": 2}
    assert "MT-Noise 50%" in (tmp_path / "table1" / "results" / "table.md").read_text()
    with (tmp_path / "table1" / "results" / "runs.csv").open(newline="") as fh:
        origin = {r["run"]: r["carried_from"] for r in csv.DictReader(fh)}
    assert set(origin) == {"baseline__clean__seed0", "baseline__mt-0.5__seed0"}
    assert set(origin.values()) == {"../../reference/results"}  # relative to this grid's results: any machine
    def files() -> dict[str, bytes]:
        return {f.name: f.read_bytes() for f in (tmp_path / "table1" / "results").iterdir() if f.suffix != ".png"}

    written = files()
    invoke("compare", table1, "-q", "--tables-only", "--runs-root", gone)  # now its own rows: the same files
    assert files() == written
    # the same folder name trained otherwise (a longer run) is not the reference's run: it is trained
    longer = sharing("longer", "[baseline]")
    longer.write_text(longer.read_text().replace("optim.epochs=2", "optim.epochs=3"))
    assert {line.split("\t")[1] for line in invoke("compare", longer, "--list", "--runs-root", gone).splitlines()} == {
        "pending"
    }
    bad = sharing("bad", "[baseline]")
    bad.write_text(bad.read_text().replace(f"carry_from: [{reference}]", "carry_from: [missing.yaml]"))
    result = runner.invoke(app, ["compare", str(bad), "--list"])
    assert result.exit_code != 0 and "carry_from" in str(result.exception) and "missing.yaml" in str(result.exception)


def test_compare_with_two_jobs_trains_each_run_once(phantoms: Path, tmp_path: Path) -> None:
    """Two worker processes share the grid; --runs-root (passed on to the workers) moves the run folders."""
    exp = tiny_experiment(tmp_path, phantoms, "[baseline]", "[0, 1]")
    invoke("compare", exp, "-q", "--jobs", "2", "--runs-root", tmp_path / "elsewhere")
    assert not (tmp_path / "runs").exists()
    runs = sorted(p.parent for p in (tmp_path / "elsewhere").rglob("metrics.json"))
    assert [r.name for r in runs] == [
        "baseline__clean__seed0", "baseline__clean__seed1", "baseline__mt-0.5__seed0", "baseline__mt-0.5__seed1",
    ]  # fmt: skip
    for run in runs:  # one row per epoch: no run was trained twice or by two workers at once
        assert [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]] == ["0", "1"]
        assert json.loads((run / "env.json").read_text())["torch_threads"] == max(1, (os.cpu_count() or 1) // 2)
    assert "MT-Noise 50%" in (tmp_path / "results" / "table.md").read_text()


def test_compare_list_and_index_train_one_run_at_a_time(phantoms: Path, tmp_path: Path) -> None:
    """What a cluster job array does: --list numbers the runs, --index trains one, --tables-only ends."""
    from svldrl.experiments.runs import claim_run

    exp = tiny_experiment(tmp_path, phantoms, "[baseline]", "[0, 1]")

    def listed() -> list[list[str]]:
        return [line.split("\t") for line in invoke("compare", exp, "--list").splitlines()]

    rows = listed()
    assert [r[0] for r in rows] == ["0", "1", "2", "3"] and {r[1] for r in rows} == {"pending"}
    assert rows[2][2] == "Baseline | MT-Noise 50% | seed 0" and rows[2][3].endswith("baseline__mt-0.5__seed0")
    invoke("compare", exp, "-q", "--index", "2")
    assert [r[1] for r in listed()] == ["pending", "pending", "finished", "pending"]
    assert [p.parent.name for p in (tmp_path / "runs").rglob("metrics.json")] == ["baseline__mt-0.5__seed0"]
    assert not (tmp_path / "results").exists()  # tables come from --tables-only once the array is done
    stamp = (Path(rows[2][3]) / "metrics.json").stat().st_mtime
    invoke("compare", exp, "-q", "--index", "2")  # a resubmitted job leaves a finished run alone
    assert (Path(rows[2][3]) / "metrics.json").stat().st_mtime == stamp
    with claim_run(Path(rows[1][3])):  # another process trains run 1 now
        assert listed()[1][1] == "running"
        result = runner.invoke(app, ["compare", str(exp), "-q", "--index", "1"])
        assert result.exit_code != 0 and "another process" in str(result.exception)
    result = runner.invoke(app, ["compare", str(exp), "--index", "4"])
    assert result.exit_code != 0 and "outside the grid's runs 0..3" in str(result.exception)
    result = runner.invoke(app, ["compare", str(exp), "--index", "0", "--list"])
    assert result.exit_code != 0 and "cannot be combined" in result.output
    invoke("compare", exp, "-q", "--tables-only")
    assert "MT-Noise 50%" in (tmp_path / "results" / "table.md").read_text()
    exp.write_text(exp.read_text().replace("optim.epochs=2", "optim.epochs=3"))  # the file edited after run 2 finished
    assert [r[1] for r in listed()] == ["pending", "pending", "conflict", "pending"]
    result = runner.invoke(app, ["compare", str(exp), "-q", "--index", "2"])
    assert result.exit_code != 0 and "other settings (optim.epochs" in str(result.exception)


def test_a_superseded_row_keeps_its_runs_and_trains_no_more(phantoms: Path, tmp_path: Path) -> None:
    """A row kept for its runs (a setting replaced by a newer default): its unfinished runs keep their
    index but are not trained by the grid or by --index, only by --index --retrain; the table says why."""
    old = "{method: baseline, label: Old B, set: [optim.loss=dice_ce], superseded: 'defaults v1; v2 changed it'}"
    exp = tiny_experiment(tmp_path, phantoms, f"[baseline, {old}]", "[0, 1]")
    listed = [line.split("\t") for line in invoke("compare", exp, "--list").splitlines()]
    superseded = [int(r[0]) for r in listed if r[2].startswith("Old B")]
    assert len(superseded) == 2 and {listed[i][1] for i in superseded} == {"superseded"}
    said = invoke("compare", exp, "-q", "--index", superseded[0])  # an array leaves it alone
    assert "superseded (defaults v1; v2 changed it): the row is kept for the runs it has; not trained" in said
    assert not Path(listed[superseded[0]][3]).exists()
    invoke("compare", exp, "-q", "--index", superseded[0], "--retrain")  # trained on request only
    invoke("compare", exp, "-q")
    trained = sorted(p.parent.name for p in (tmp_path / "runs").rglob("metrics.json"))
    assert trained == sorted(["baseline__clean__seed0", "baseline__clean__seed1", "baseline__mt-0.5__seed0",
                              "baseline__mt-0.5__seed1", "old-b__mt-0.5__seed0"])  # fmt: skip
    states = {r[0]: r[1] for r in (line.split("\t") for line in invoke("compare", exp, "--list").splitlines())}
    assert [states[str(i)] for i in superseded] == ["finished", "superseded"]
    table = (tmp_path / "results" / "table.md").read_text()
    assert "| Old B (superseded) |" in table
    assert "Old B: superseded (defaults v1; v2 changed it); kept for the runs it has." in table
    assert_entries_refused(tmp_path, phantoms, "[{}]", [
        ("{method: baseline, label: X, superseded: ''}", "superseded must say why"),
        ("{method: baseline, labels: X}", "unknown keys ['labels']"),
    ])  # fmt: skip


def assert_entries_refused(tmp_path: Path, phantoms: Path, methods: str, cases: list[tuple[str, str]]) -> None:
    """Each method entry, put into ``methods`` (e.g. "[baseline, {}]"), makes --list fail with its message."""
    (tmp_path / "bad").mkdir(exist_ok=True)
    for entry, message in cases:
        bad = tiny_experiment(tmp_path / "bad", phantoms, methods.format(entry), "[0]")
        result = runner.invoke(app, ["compare", str(bad), "--list"])
        assert result.exit_code != 0 and message in str(result.exception), result.output


def test_a_same_as_row_is_not_trained_and_its_runs_check_the_claim(phantoms: Path, tmp_path: Path) -> None:
    """A row that trains as another (RSF-assisted ADELE where ADELE never corrects): its runs keep their
    index and are trained on request only; the table lists the seeds whose scores were checked equal to
    the other row's, and refuses to be written when one is not (a false claim in the file)."""
    twin = "{method: baseline, label: Twin, set: [optim.loss=dice], same_as: {row: Baseline, why: 'the same method'}}"
    exp = tiny_experiment(tmp_path, phantoms, f"[baseline, {twin}]", "[0, 1]")
    listed = [line.split("\t") for line in invoke("compare", exp, "--list").splitlines()]
    twins = [int(r[0]) for r in listed if r[2].startswith("Twin")]
    assert len(twins) == 2 and {listed[i][1] for i in twins} == {"same-as"}
    said = invoke("compare", exp, "-q", "--index", twins[0])
    assert "trains as Baseline (the same method): the runs it has check that; not trained" in said
    invoke("compare", exp, "-q", "--index", twins[0], "--retrain")
    invoke("compare", exp, "-q")
    trained = sorted(p.parent.name for p in (tmp_path / "runs").rglob("metrics.json"))
    assert "twin__mt-0.5__seed0" in trained and "twin__mt-0.5__seed1" not in trained and len(trained) == 5
    table = (tmp_path / "results" / "table.md").read_text()
    assert ("Twin: trains as Baseline (the same method); its other runs are not trained. Runs of its own that "
            "score case for case as Baseline's: MT-Noise 50% seed 0.") in table
    # the same claim for a row that differs (another loss): the tables are refused, naming the run
    other = "{method: baseline, label: Other, set: [optim.loss=dice_ce], same_as: {row: Baseline, why: 'claimed'}}"
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(exp.read_text().replace(f"[baseline, {twin}]", f"[baseline, {other}]")
                     .replace("out: results", "out: results-wrong").replace("seeds: [0, 1]", "seeds: [0]"))
    index = next(int(r[0]) for r in (line.split("\t") for line in invoke("compare", wrong, "--list").splitlines())
                 if r[2].startswith("Other"))
    invoke("compare", wrong, "-q", "--index", index, "--retrain")
    result = runner.invoke(app, ["compare", str(wrong), "-q", "--tables-only"])
    assert result.exit_code != 0
    assert "Other (MT-Noise 50%, seed 0) scores differently from Baseline" in str(result.exception)
    assert not (tmp_path / "results-wrong").exists()  # refused before anything was written
    assert_entries_refused(tmp_path, phantoms, "[baseline, {}]", [
        ("{method: baseline, label: X, same_as: {row: Nobody, why: w}}", "is not one other trained row"),
        ("{method: baseline, label: X, same_as: {row: X, why: w}}", "is not one other trained row"),
        ("{method: baseline, label: X, same_as: Baseline}", "same_as must be {row:"),
        ("{method: baseline, label: X, superseded: old, same_as: {row: Baseline, why: w}}", "not both"),
        ("{method: baseline, label: 'BASELINE', set: [optim.loss=dice_ce]}", "would share run folders"),
    ])  # fmt: skip


def test_compare_noise_only_makes_the_labels_the_runs_then_read(phantoms: Path, tmp_path: Path) -> None:
    """--noise-only before a job array: one noise folder per noise setting, no run; each run reads its own."""
    exp = tiny_experiment(tmp_path, phantoms, "[baseline, co-teaching]", "[0, 1]")
    made = [line.split("\t") for line in invoke("compare", exp, "--noise-only").splitlines()]
    assert [state for state, _ in made] == ["made", "made"]  # seeds 0 and 1 of MT 50 %; both methods share them
    assert sorted(Path(folder).name.split("-")[2] for _, folder in made) == ["seed0", "seed1"]
    assert not list((tmp_path / "runs").rglob("metrics.json"))
    again = [line.split("\t") for line in invoke("compare", exp, "--noise-only").splitlines()]
    assert again == [["exists", folder] for _, folder in made]
    rows = [line.split("\t") for line in invoke("compare", exp, "--list").splitlines()]
    index = next(r[0] for r in rows if r[3].endswith("co-teaching-oracle__mt-0.5__seed1"))
    assert invoke("compare", exp, "--noise-only", "--index", index).split("\t")[0] == "exists"  # that run's alone
    assert invoke("compare", exp, "--noise-only", "--index", "0") == ""  # a clean run needs no noise
    invoke("compare", exp, "-q", "--index", index)
    used = json.loads((Path(rows[int(index)][3]) / "noisy_labels.json").read_text())["path"]
    seed1 = next(Path(f).resolve() for _, f in made if "-seed1-" in f)
    assert Path(used).parent.resolve() == seed1  # the run read the labels made before it, not labels of its own


def test_the_sbatch_array_script_trains_its_task(phantoms: Path, tmp_path: Path) -> None:
    """docs/cluster/svldrl-array.sbatch as a SLURM array task runs it (bash, task id in the environment)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.skip(f"{venv} is not a virtual environment with bin/activate")
    script = Path(__file__).parents[2] / "docs" / "cluster" / "svldrl-array.sbatch"
    exp = tiny_experiment(tmp_path, phantoms, "[baseline]", "[0]")
    env = dict(os.environ, SLURM_ARRAY_TASK_ID="1", SVLDRL_VENV=str(venv), SVLDRL_RUNS=str(tmp_path / "scratch"))
    subprocess.run(["bash", str(script), str(exp)], cwd=tmp_path, env=env, check=True, capture_output=True)
    assert [p.parent.name for p in (tmp_path / "scratch").rglob("metrics.json")] == ["baseline__mt-0.5__seed0"]


def test_compare_refuses_a_finished_run_trained_with_other_settings(phantoms: Path, tmp_path: Path) -> None:
    text = (
        f"name: tiny\ndata: {phantoms}\npreset: cpu\n"
        "set: [optim.epochs=1, optim.iters_per_epoch=1, data.patch_size=32, val_every=1, {lr}]\n"
        "methods: [baseline]\nnoise: [none]\nratios: [0]\nseeds: [0]\nruns_root: runs\nout: results\n"
    )
    exp = tmp_path / "exp.yaml"
    exp.write_text(text.format(lr="optim.lr=0.003"))
    invoke("compare", exp, "-q")
    exp.write_text(text.format(lr="optim.lr=0.001"))
    result = runner.invoke(app, ["compare", str(exp), "-q"])
    assert result.exit_code != 0
    assert "finished run with other settings" in str(result.exception) and "config.yaml" in str(result.exception)
    (next((tmp_path / "runs").rglob("metrics.json"))).unlink()  # now an interrupted run: refused before training
    result = runner.invoke(app, ["compare", str(exp), "-q"])
    assert result.exit_code != 0 and "unfinished run with other settings" in str(result.exception)


def test_a_baseline_with_its_own_loss_refuses_optim_loss_before_any_work(phantoms: Path, tmp_path: Path) -> None:
    """optim.loss chooses the baseline's and SVL-DRL's loss; a noisy-label baseline adds its own CE, so
    dice_ce would count it twice. Refused by train and by compare before a run folder or noise exists."""
    result = runner.invoke(
        app, ["train", str(phantoms), "--method", "mtcl", "--noise", "mt", "--noise-ratio", "0.5",
              "--out", str(tmp_path / "runs" / "mtcl"), "--set", "optim.loss=dice_ce"],
    )  # fmt: skip
    assert result.exit_code != 0 and "optim.loss=dice_ce is for the baseline and svl-drl" in str(result.exception)
    exp = tiny_experiment(tmp_path, phantoms, "[baseline, {method: co-teaching, set: [optim.loss=dice_ce]}]", "[0]")
    result = runner.invoke(app, ["compare", str(exp), "-q"])
    assert result.exit_code != 0 and "co-teaching: optim.loss=dice_ce" in str(result.exception)
    assert not (tmp_path / "runs").exists()
