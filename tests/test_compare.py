"""experiments/compare.py: the Base/Single/Multi table from real runs, resumed, and its parts."""

import csv
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import tables  # pylint: disable=g-import-not-at-top,wrong-import-position
from test_training_loop import final_state, flat  # pylint: disable=g-import-not-at-top

SHORT = ["--override=train.cycles=1", "--override=train.client_phase_steps=(2,)",
         "--override=train.server_phase_steps=1"]


def compare(out, data_dir, *args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "compare.py"),
                         f"--out={out}", f"--data_dir={data_dir}", "--seeds=1", *SHORT, *args],
                        cwd=ROOT, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_baselines_table_from_real_runs_then_resumed(tmp_path, data_dir):
  result = compare(tmp_path, data_dir, "--table=baselines", "--size=tiny", "--tasks=denoising")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "3 runs, 0 already finished" in result.stdout
  markdown = (tmp_path / "baselines_tiny.md").read_text()
  assert "| task / set | input | Base | Single | Multi | Multi − Single (dB) |" in markdown
  assert "| denoising / sigma30 |" in markdown and "| deraining / heavy |" in markdown
  with open(tmp_path / "baselines_tiny.csv") as f:
    columns = {(r["task"], r["column"]) for r in csv.DictReader(f)}
  assert {("denoising", c) for c in ("input", "Base", "Single", "Multi")} <= columns
  assert ("deraining", "Base") not in columns  # --tasks=denoising: Multi alone covers it.
  assert (tmp_path / "baselines_tiny.png").stat().st_size > 10_000
  again = compare(tmp_path, data_dir, "--table=baselines", "--size=tiny", "--tasks=denoising")
  assert again.returncode == 0 and "3 runs, 3 already finished" in again.stdout
  assert (tmp_path / "baselines_tiny.md").read_text().split("Seeds")[1].split("|")[1:] == \
      markdown.split("Seeds")[1].split("|")[1:]  # The same table, nothing rerun.


@pytest.mark.slow
def test_paper_size_runs_end_to_end_on_tiny_data(tmp_path, data_dir):
  """configs/paper.py (its model at width 32 with one body layer, to run in CI time) and the
  published column, one step per phase on tiny data; Base and Single keep their task's clients."""
  result = compare(tmp_path, data_dir, "--table=baselines", "--size=paper", "--tasks=denoising",
                   "--override=data.suite=tiny", "--override=clients=('denoising','deraining')",
                   "--override=model.body_layers=1", "--override=model.dim=32",
                   "--override=data.workers=0",  # paper.py's 4 loader processes, on 2 cores.
                   "--override=data.batch_size=1", "--override=eval.max_images=1",
                   "--override=eval.stride=64", "--override=train.client_phase_steps=(1,)")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "published (PSNR)" in (tmp_path / "baselines_paper.md").read_text()
  config = json.loads((tmp_path / "runs" / "base_denoising_seed0" / "config.json").read_text())
  assert config["clients"] == ["denoising"] and config["model"]["body_mlp_dim"] == 1024  # paper.py


@pytest.mark.slow
def test_privacy_table_attacks_each_run_and_counts_its_bytes(tmp_path, data_dir):
  result = compare(tmp_path, data_dir, "--table=privacy", "--size=tiny",
                   "--columns=plain,mixed K=2", "--attack_steps=3")
  assert result.returncode == 0, result.stderr[-3000:]
  markdown = (tmp_path / "privacy_tiny.md").read_text()
  full = 2 * 8 * 8 * 32 * 4  # tiny: batch 2 × f_H of (8, 8, 32) float32.
  assert f"| plain | {2 * full:,} | {2 * full:,} |" in markdown
  assert f"| mixed K=2 | {full:,} | {full:,} |" in markdown  # Every message halved.
  for run in ("TAViT_seed0", "mixed_K2_seed0"):
    assert (tmp_path / "runs" / run / "privacy_attack" / "attack.csv").exists()


@pytest.mark.slow
def test_systems_table_runs_single_round_simultaneous_and_the_pooled_baseline(tmp_path, data_dir):
  result = compare(tmp_path, data_dir, "--table=systems", "--size=tiny",
                   "--columns=single round,SCA-MTL (pooled),simultaneous")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  table = (tmp_path / "systems_tiny.md").read_text()
  assert "| single round | 0.1 MiB | 0.1 MiB |" in table
  # Simultaneous sends alternating TAViT's messages: its bytes are the runner's TAViT count.
  simultaneous = next(line for line in table.splitlines() if line.startswith("| simultaneous |"))
  assert simultaneous.count("MiB") == 2 and "| 0.0 MiB |" not in simultaneous
  assert json.load(open(tmp_path / "runs" / "simultaneous_seed0" / "config.json"))[
      "train.mode"] == "simultaneous"
  assert "| SCA-MTL (pooled) | every training image, once | — |" in table
  assert "| deraining / heavy |" in table
  # SCA-MTL's neck trained: its gates (0 at initialisation) moved.
  _, state = final_state(str(tmp_path / "runs" / "SCA_MTL_seed0"))
  gates = [v for k, v in flat(state["server"]["body"]).items() if "SCAMTLNeck" in k and "gate" in k]
  assert len(gates) == 4 and all(g != 0 for g in gates)  # 3 CTAM + 1 CSAM.


def test_unknown_task_and_bad_override_are_one_line(tmp_path, data_dir):
  for args, message in ((["--tasks=deblurring", "--size=tiny"], "--tasks deblurring: configs/tiny.py has"),
                        (["--override=train.cycles"], "--override wants key=value"),
                        (["--columns=Triple"], "--columns Triple: the baselines table has")):
    result = compare(tmp_path, data_dir, *args)
    assert result.returncode == 2 and result.stderr.startswith(f"error: {message}"), result.stderr


def test_table_means_spread_and_gain():
  runs = [(column, [{"task": "denoising", "eval_set": "sigma30", "input/psnr": 19.0,
                     "input/ssim": 0.3, "output/psnr": psnr, "output/ssim": 0.8}])
          for column, psnr in (("Single", 25.0), ("Single", 27.0), ("Multi", 27.5), ("Multi", 28.5))]
  rows = tables.aggregate(runs, ["Base", "Single", "Multi"])
  assert rows[0]["Multi/psnr"] == [27.5, 28.5] and rows[0]["Base/psnr"] == []
  line = tables.markdown(rows, ["Base", "Single", "Multi"], ("Multi", "Single"))[-1]
  assert line == ("| denoising / sigma30 | 19.00 / 0.300 | — | 26.00 ± 1.00 / 0.800 | "
                  "28.00 ± 0.50 / 0.800 | +2.00 |")


def _plans(script: str) -> str:
  """Runs `script` with experiments/compare.py imported (its absl flags want a process)."""
  result = subprocess.run([sys.executable, "-c", "import compare, json\n" + script],
                          cwd=os.path.join(ROOT, "experiments"), capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  return result.stdout


def test_study_tables_plan_the_right_runs():
  """transfer: per held-out task a donor on the other tasks, Single, three newcomers through
  frozen bodies (two read a donor's workdir and wait for it) and Base, on validation images;
  data_limited and budget: the levels, sharing the baselines table's runs where equal."""
  out = json.loads(_plans(
      "plans = {t: compare.plan(t, 'default', 2, None, (), None, runs_dir='/r')\n"
      "         for t in ('transfer', 'data_limited', 'budget')}\n"
      "print(json.dumps({t: (c, g, [(r.column, r.name, dict(r.overrides), r.after)\n"
      "                             for r in runs]) for t, (c, g, runs) in plans.items()}))"))
  columns, gain, runs = out["transfer"]
  assert columns == ["initial body", "own task's body", "other tasks' body", "Base"]
  assert gain == ["other tasks' body", "initial body"]
  assert len(runs) == 2 * 4 * 6  # Seeds × held-out tasks × (2 donors, 3 newcomers, Base).
  runs = {name: (column, overrides, after) for column, name, overrides, after in runs}
  assert all(o["data.eval_split"] == "validation" for _, o, _ in runs.values())
  column, donor, after = runs["donor_without_deraining_seed1_val"]
  assert column == "" and after == [] and donor["seed"] == 1
  assert donor["clients"] == ["deblocking"] * 2 + ["denoising"] * 2 + ["deblurring"] * 2
  for body, source in (("initial", None), ("own", "single_deraining_seed1_val"),
                       ("others", "donor_without_deraining_seed1_val")):
    column, overrides, after = runs[f"newcomer_deraining_{body}_seed1_val"]
    assert overrides["train.server_phase_steps"] == 0 and overrides["seed"] == 1
    assert overrides.get("train.body_from") == (source and f"/r/{source}")
    assert after == ([source] if source else [])
  assert runs["base_deraining_seed1_val"][0] == "Base"
  columns, _, runs = out["data_limited"]
  assert columns[:3] == ["Base N=2", "Single N=2", "Multi N=2"] and columns[-1] == "Multi N=all"
  names = {name: overrides for _, name, overrides, _ in runs}
  assert names["single_denoising_n8_seed0"]["data.train_images"] == 8
  assert "data.train_images" not in names["multi_seed1"]  # The baselines table's run.
  columns, _, runs = out["budget"]
  assert "Multi sim 16×" in columns and len(runs) == 2 * 3 * (2 + 2 * 3)
  names = {name: overrides for _, name, overrides, _ in runs}
  multi = names["multi_denoising_deraining_sim_x4_seed0"]
  assert multi["train.cycles"] == 8 and multi["train.mode"] == "simultaneous"
  assert multi["clients"] == ["denoising"] * 2 + ["deraining"] * 2
  assert "train.cycles" not in names["base_denoising_seed0"]


@pytest.mark.slow
def test_transfer_table_from_real_runs_then_resumed(tmp_path, data_dir):
  """The held-out task's newcomers train through frozen bodies, the donors' exactly."""
  result = compare(tmp_path, data_dir, "--table=transfer", "--size=tiny", "--tasks=denoising")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert "6 runs, 0 already finished" in result.stdout
  markdown = (tmp_path / "transfer_tiny.md").read_text()
  assert ("| task / set | input | initial body | own task's body | other tasks' body | Base | "
          "other tasks' body − initial body (dB) |") in markdown
  assert "| denoising / sigma30 |" in markdown and "deraining" not in markdown.split("|---|")[1]
  assert "held-out validation images" in markdown
  for body, donor in (("others", "donor_without_denoising_seed0_val"),
                      ("own", "single_denoising_seed0_val")):
    _, given = final_state(str(tmp_path / "runs" / donor))
    _, state = final_state(str(tmp_path / "runs" / f"newcomer_denoising_{body}_seed0_val"))
    for key, value in flat(state["server"]["body"]).items():
      assert (value == flat(given["server"]["body"])[key]).all(), (body, key)
  again = compare(tmp_path, data_dir, "--table=transfer", "--size=tiny", "--tasks=denoising")
  assert again.returncode == 0 and "6 runs, 6 already finished" in again.stdout


def test_difference_table_and_plot_of_the_budget_and_data_limited_tables(tmp_path):
  row = {"task": "denoising", "eval_set": "sigma30", "input/psnr": [19.0], "input/ssim": [0.3]}
  values = {"Base 1×": [26.0, 27.0], "Single 1×": [26.5, 26.5], "Multi 1×": [27.0, 28.0],
            "Base 4×": [28.0], "Single 4×": [], "Multi 4×": [28.5]}
  row.update({f"{c}/psnr": v for c, v in values.items()})
  levels = [("alternating", f"{k}×", {"Base": f"Base {k}×", "Single": f"Single {k}×",
                                      "Multi": f"Multi {k}×"}) for k in (1, 4)]
  lines = tables.differences_markdown([row], levels)
  assert lines[2] == ("| task / set | alternating 1×: Multi − Single | alternating 1×: Multi − Base "
                      "| alternating 4×: Multi − Single | alternating 4×: Multi − Base |")
  # Per-seed differences: Multi − Single (0.5, 1.5), Multi − Base (1, 1); 4×: no Single.
  assert lines[-1] == "| denoising / sigma30 | +1.00 ± 0.50 | +1.00 | — | +0.50 |"
  tables.plot_differences([row], levels, str(tmp_path / "d.png"), "budget")
  assert (tmp_path / "d.png").stat().st_size > 5_000
