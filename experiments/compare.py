"""Does multi-task training help? Base vs Single vs Multi, and the ablations that say why
(docs/design.md §3.7).

  python experiments/compare.py --table=baselines --seeds=3
  python experiments/compare.py --table=ablations --seeds=3
  python experiments/compare.py --table=privacy --seeds=3
  python experiments/compare.py --table=systems --seeds=3
  python experiments/compare.py --table=transfer --seeds=3        # new-task transfer (studies.py)
  python experiments/compare.py --table=data_limited --seeds=3    # 2, 8, all images per task
  python experiments/compare.py --table=budget --seeds=3 --budgets=1,4   # 16×: --seeds=1
  python experiments/compare.py --table=baselines --size=paper --data_dir=/data/tfds  # accelerator

baselines: per task, Base (one client, head + body + tail end to end), Single (TAViT with that
task's two clients) and Multi (TAViT with every task's clients), at equal per-client compute:
the same steps per client, server steps and evaluation (configs/baselines.py).
ablations: TAViT (Multi) against the body frozen at its initialisation (no server phase), no
FedAvg of same-task clients, server phases 4× longer, and the whole run 2× longer.
privacy: what crosses the wire: plain TAViT, permuted tokens (positions added by the head),
no positions (`model.pos_emb=none`, shuffled), the f_H noise defence (σ = 2, 8, on no
positions), punched tokens (ρ = 0.5, 0.25), mixed tokens (K = 2 clients of a task) and a
bfloat16 wire; per variant also the bytes per client step and the strongest attacker of
experiments/privacy_attack.py (run once per finished run), and a frontier plot (restoration
loss vs the strongest attack's margin over the patch-mean baseline).
systems: what a user chooses between (docs/design.md §4.4-4.6): alternating TAViT, local
training only (each client's head and tail through the body's fixed initialisation, no messages),
simultaneous split learning (the body steps in every client step), MS-DINO's single round, and
SCA-MTL with the data pooled; with the bytes each exchanges.
transfer, data_limited, budget: where the shared body pays (experiments/studies.py says
what each runs). transfer scores on the validation images unless --eval_split says otherwise;
data_limited and budget add a table (and plot) of Multi − Single and Multi − Base.

Every run is a `tavit-train` workdir under <out>/runs/; the same command again resumes: finished
runs are read, unfinished ones continue where they stopped. `--jobs` runs several at once (each
uses every core XLA finds: on 2 cores one at a time is fastest). Writes <table>_<size>.md, .csv
(each seed's value) and .png (gain over the input, ± std over seeds) into --out, with the
command, wall time, machine and commit. `--size=paper` adds the published numbers
(docs/design.md §3.6).
`--override=train.cycles=1` (repeatable) changes a field of every run, for smoke tests; an
override of `clients` changes Multi only (Base and Single keep their task's clients).
"""

import ast
import collections
import concurrent.futures
import csv
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time

from absl import flags
import numpy as np

from tavit_jax import config_files, files, schedule
from tavit_jax.cli.common import no_arguments, run_app
from tavit_jax.errors import TavitError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import studies  # pylint: disable=g-import-not-at-top,wrong-import-position  # noqa: E402
import tables  # pylint: disable=g-import-not-at-top,wrong-import-position  # noqa: E402
from run_spec import Run  # pylint: disable=g-import-not-at-top,wrong-import-position  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = ("default", "paper", "tiny")

TABLES = ("baselines", "ablations", "privacy", "systems", "transfer", "data_limited", "budget")
_TABLE = flags.DEFINE_enum("table", "baselines", TABLES, "which comparison")
_SEEDS = flags.DEFINE_integer("seeds", 3, "seeds 0..N-1 of every run")
_SIZE = flags.DEFINE_enum("size", "default", SIZES, "configs/<size>.py is Multi (tiny: tests)")
_TASKS = flags.DEFINE_list("tasks", None, "only these tasks' Base/Single runs (default: all; "
                           "transfer: the held-out tasks; budget: denoising, deraining)")
_JOBS = flags.DEFINE_integer("jobs", 1, "runs at once")
_OUT = flags.DEFINE_string("out", "experiments/results", "folder for runs and tables")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir of every run")
_OVERRIDE = flags.DEFINE_multi_string("override", [], "key=value for every run's config")
_COLUMNS = flags.DEFINE_list("columns", None, "only these columns' runs (default: all)")
_EVAL_SPLIT = flags.DEFINE_enum("eval_split", None, ["test", "validation"], "images every run "
                                "is scored on (default: validation for transfer, else test)")
_TRAIN_IMAGES = flags.DEFINE_list("train_images", [str(n) for n in studies.DATA_LIMITS],
                                  "data_limited: data.train_images per task of each level (0: all)")
_BUDGETS = flags.DEFINE_list("budgets", [str(k) for k in studies.BUDGETS],
                             "budget: multiples of the size's train.cycles")
_ATTACK_STEPS = flags.DEFINE_integer("attack_steps", 400, "privacy: attacker training steps (0: "
                                     "train only; the attacks run on a later invocation)")

NO_POSITIONS = (("model.pos_emb", "none"), ("train.permute_tokens", "per_sample"))
PRIVACY_VARIANTS = {
    "plain": (),
    "permuted": (("model.pos_emb", "client"), ("train.permute_tokens", "per_sample")),
    "no positions": NO_POSITIONS,
    "noised σ=2": NO_POSITIONS + (("model.feature_clip", 1.0), ("model.feature_noise", 2.0)),
    "noised σ=8": NO_POSITIONS + (("model.feature_clip", 1.0), ("model.feature_noise", 8.0)),
    "punched ρ=0.5": (("model.mask_token", True), ("train.token_keep", 0.5)),
    "punched ρ=0.25": (("model.mask_token", True), ("train.token_keep", 0.25)),
    "mixed K=2": (("train.token_mix", "cutmix"), ("train.mix_clients", 2)),
    "bfloat16 wire": (("train.wire_dtype", "bfloat16"),),
}


# Column: (run name, config under configs/, overrides); `size` is --size. TAViT and local
# only are the ablation table's TAViT and body-frozen runs, so either table reuses them.
SYSTEMS = {
    "TAViT": ("TAViT", "{size}.py", ()),
    "local only": ("body_frozen", "{size}.py", (("train.server_phase_steps", 0),)),
    "simultaneous": ("simultaneous", "{size}.py", (("train.mode", "simultaneous"),)),
    "single round": ("single_round", "single_round.py:{size}", ()),
    "SCA-MTL (pooled)": ("SCA_MTL", "baselines.py:sca_mtl,{size}", ()),
}


def _parse_overrides(pairs) -> tuple:
  """((key, value), ...) in order, a key given twice keeping its last value."""
  parsed = {}
  for pair in pairs:
    key, sep, text = pair.partition("=")
    if not sep:
      raise TavitError(f"--override wants key=value, not {pair!r}")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    parsed[key] = value
  return tuple(parsed.items())


def eval_split(table: str, suite: str, chosen=None) -> str:
  """The images a table's runs are scored on: `chosen`, else validation for transfer where
  the suite has them."""
  from tavit_jax.data.tasks import VALIDATION_SUITES  # pylint: disable=g-import-not-at-top
  return chosen or ("validation" if table == "transfer" and suite in VALIDATION_SUITES else "test")


def plan(table: str, size: str, seeds: int, tasks, overrides: tuple, data_dir, columns_only=None,
         *, split=None, runs_dir=None, limits=studies.DATA_LIMITS, budgets=studies.BUDGETS):
  """(columns, (column, baseline) whose PSNR gain is shown, runs). `split`: eval_split's
  choice; `runs_dir`: where the runs' workdirs are (train.body_from names them)."""
  multi = os.path.join(ROOT, "configs", f"{size}.py")
  common = tuple((k, v) for k, v in overrides if k != "clients")
  common += (("data.data_dir", data_dir),) if data_dir else ()
  multi_only = tuple((k, v) for k, v in overrides if k == "clients")
  reference = Run("", "", multi, common + multi_only).load()
  split = eval_split(table, reference.data.suite, split)
  # Validation runs score other images than test runs of the same name: a workdir each.
  suffix = "" if split == "test" else "_val"
  common += (("data.eval_split", split),) if split != "test" else ()
  runs_dir = runs_dir or os.path.join(ROOT, "experiments", "results", "runs")
  all_tasks = list(dict.fromkeys(reference.clients))
  unknown = set(tasks or ()) - set(all_tasks)
  if unknown:
    raise TavitError(f"--tasks {', '.join(sorted(unknown))}: configs/{size}.py has "
                     f"{', '.join(all_tasks)}")
  runs = []
  if table == "transfer":
    columns, gain, runs = studies.transfer(size, seeds, tasks or all_tasks, all_tasks, multi,
                                           list(reference.clients), common, runs_dir, suffix)
  elif table == "data_limited":
    columns, gain, runs = studies.data_limited(size, seeds, tasks or all_tasks, multi, multi_only,
                                               common, suffix, limits)
  elif table == "budget":
    two = tasks or [t for t in studies.BUDGET_TASKS if t in all_tasks]
    columns, gain, runs = studies.budget(size, seeds, two, multi, list(reference.clients),
                                         reference.train.cycles, common, suffix, budgets)
  elif table == "baselines":
    columns, gain = ["Base", "Single", "Multi"], ("Multi", "Single")
    for seed in range(seeds):
      s = common + (("seed", seed),)
      for task in tasks or all_tasks:
        for kind in ("base", "single"):
          spec = os.path.join(ROOT, "configs", f"baselines.py:{kind},{task},{size}")
          runs.append(Run(kind.capitalize(), f"{kind}_{task}_seed{seed}", spec, s))
      runs.append(Run("Multi", f"multi_seed{seed}", multi, s + multi_only))
  elif table == "systems":
    columns, gain = list(SYSTEMS), ("TAViT", "local only")
    for seed in range(seeds):
      for column, (name, config, changes) in SYSTEMS.items():
        spec = os.path.join(ROOT, "configs", config.format(size=size))
        runs.append(Run(column, f"{name}_seed{seed}", spec, common + (("seed", seed),) + changes))
  else:
    train = reference.train
    variants = PRIVACY_VARIANTS if table == "privacy" else {
        "TAViT": (),
        "body frozen": (("train.server_phase_steps", 0),),
        "no FedAvg": (("train.unify_every", -1),),
        "server ×4": (("train.server_phase_steps", 4 * train.server_phase_steps),),
        "2× longer": (("train.cycles", 2 * train.cycles),),
    }
    columns, gain = list(variants), None
    for seed in range(seeds):
      for column, changes in variants.items():
        # Unchanged TAViT has one name in every table, so the tables share its runs.
        name = "TAViT" if not changes else (
            column.replace(" ", "_").replace("×", "x").replace("ρ=", "").replace("K=", "K")
            .replace("σ=", "sigma"))
        runs.append(Run(column, f"{name}_seed{seed}", multi,
                        common + multi_only + (("seed", seed),) + changes))
  if suffix and table not in ("transfer", "data_limited", "budget"):
    runs = [dataclasses.replace(run, name=run.name + suffix) for run in runs]
  if columns_only:
    unknown = set(columns_only) - set(columns)
    if unknown:
      raise TavitError(f"--columns {', '.join(sorted(unknown))}: the {table} table has "
                       f"{', '.join(columns)}")
    columns = [c for c in columns if c in columns_only]
    kept = [run for run in runs if run.column in columns]
    needed = {name for run in kept for name in run.after}  # Donors of the kept runs.
    runs = [run for run in runs if run in kept or run.name in needed]
    gain = gain if gain and set(gain) <= set(columns) else None
  return columns, gain, runs


def _finished(run: Run, workdir: str):
  """The run's final evaluation rows if it has finished, else None."""
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    return None
  rows = files.read_json(path)
  config = run.load()
  from tavit_jax.training import protocols  # pylint: disable=g-import-not-at-top  # JAX.
  phases = protocols.make_schedule(config.train, len(config.clients))
  if not rows or max(r["phase"] for r in rows) < len(phases) - 1:
    return None
  return tables.final_rows(rows)


def _wall(workdir: str, add: float = 0.0) -> float:
  """Seconds of training spent on this run over every attempt."""
  path = os.path.join(workdir, "compare_wall_seconds.json")
  seconds = files.read_json(path) if os.path.exists(path) else 0.0
  if add:
    seconds += add
    with open(path, "w") as f:
      json.dump(seconds, f)
  return seconds


def _execute(run: Run, workdir: str, log_path: str) -> int:
  command = [sys.executable, "-m", "tavit_jax.cli.train", f"--config={run.config}",
             f"--workdir={workdir}",
             *(config_files.override_flag(key, value) for key, value in dict(run.overrides).items())]
  os.makedirs(workdir, exist_ok=True)
  started = time.time()
  with open(log_path, "a") as log:
    log.write(" ".join(command) + "\n")
    log.flush()
    code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
  _wall(workdir, time.time() - started)
  return code


def _attack(run: Run, workdir: str, log_path: str) -> int:
  """experiments/privacy_attack.py on a finished run, once."""
  if os.path.exists(os.path.join(workdir, "privacy_attack", "attack.csv")):
    return 0
  config = run.load()
  command = [sys.executable, os.path.join(ROOT, "experiments", "privacy_attack.py"),
             f"--workdir={workdir}", f"--suite={config.data.suite}",
             f"--steps={_ATTACK_STEPS.value}"]
  command += [f"--data_dir={config.data.data_dir}"] if config.data.data_dir else []
  with open(log_path, "a") as log:
    return subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def _wire_table(runs, workdir, columns) -> list[str]:
  """Per variant: bytes per client-phase step each way and, per task, the strongest
  attacker's reconstruction PSNR and its margin over the patch-mean baseline (mean over
  seeds), as Markdown lines."""
  # pylint: disable=g-import-not-at-top  # JAX only for this table.
  from tavit_jax import models
  from tavit_jax.evaluation import communication
  from tavit_jax.attacks import suite
  strongest = collections.defaultdict(list)  # (column, task) -> [(psnr, margin, attacker)]
  sizes = {}
  for run in runs:
    path = os.path.join(workdir(run), "privacy_attack", "attack.csv")
    if os.path.exists(path):
      with open(path) as f:
        rows = [dict(r, **{"reconstruction/psnr": float(r["reconstruction/psnr"])})
                for r in csv.DictReader(f)]
      for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        best = suite.strongest(mine)
        mean = next(r for r in mine if r["attacker"] == suite.PATCH_MEAN)
        strongest[(run.column, task)].append(
            (best["reconstruction/psnr"], best["reconstruction/psnr"] - mean["reconstruction/psnr"],
             best["attacker"]))
    if run.column not in sizes:
      config = run.load()
      model = models.build(config.model, config.data.patch_size)
      sizes[run.column] = communication.bytes_per_step(
          model, config.data.patch_size, config.data.batch_size, config.train.wire_dtype,
          config.train.token_keep,
          config.train.mix_clients if config.train.token_mix != "none" else 1)
  task_names = list(dict.fromkeys(task for _, task in strongest))
  lines = ["What crosses the wire per client and client-phase step, and the strongest attack on "
           "f_H (experiments/privacy_attack.py): PSNR of the client's input it reconstructs, dB, "
           "mean over seeds (in brackets: above the patch-mean baseline; the attacker):", "",
           "| variant | up (B) | down (B) | " + " | ".join(task_names) + " |",
           "|---|---|---|" + "---|" * len(task_names)]
  for column in columns:
    cells = []
    for task in task_names:
      found = strongest.get((column, task))
      cells.append(f"{np.mean([f[0] for f in found]):.2f} ({np.mean([f[1] for f in found]):+.2f}; "
                   f"{', '.join(sorted({f[2] for f in found}))})" if found else "—")
    lines.append(f"| {column} | {sizes[column]['client_phase_up']:,} | "
                 f"{sizes[column]['client_phase_down']:,} | " + " | ".join(cells) + " |")
  frontier = {column: np.mean([np.mean([f[1] for f in strongest[(column, task)]])
                                for task in task_names])
              for column in columns if all((column, task) in strongest for task in task_names)}
  return lines + [""], frontier


def _systems_bytes(runs, columns) -> list[str]:
  """Per system: bytes exchanged over the whole run, all clients together."""
  # pylint: disable=g-import-not-at-top  # JAX only for this table.
  from tavit_jax import models
  from tavit_jax.evaluation.communication import mib
  from tavit_jax.training import protocols
  cells = {}
  for run in runs:
    if run.column in cells:
      continue
    config = run.load()
    model = models.build(config.model, config.data.patch_size)
    chosen = protocols.select(config.train)
    totals = chosen.run_bytes(config, model, chosen.phases(config.train, len(config.clients)))
    if totals is None:  # Nothing split: the data goes where the model is.
      cells[run.column] = ("every training image, once", "—")
    elif config.train.server_phase_steps == 0:  # The body's initialisation: built locally.
      cells[run.column] = (mib(0), mib(0))
    else:
      cells[run.column] = (mib(totals["up"]), mib(totals["down"]))
  return ["Bytes exchanged over the whole run, all clients together (local only: the body at "
          "its initialisation, which every client builds from the seed itself):", "",
          "| system | up (clients → server) | down (server → clients) |", "|---|---|---|",
          *(f"| {c} | {cells[c][0]} | {cells[c][1]} |" for c in columns), ""]


def _machine() -> str:
  return f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform(terse=True)}"


def _commit() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def _integers(flag) -> tuple:
  """A list flag of integers, or a one-line refusal naming it."""
  try:
    return tuple(int(v) for v in flag.value)
  except ValueError:
    raise TavitError(f"--{flag.name} must be integers, not {','.join(flag.value)}") from None


def _validate(runs) -> None:
  """Every run's config checked whole before any run starts or any folder is made: a bad
  --override is one line naming the run and the key, not a failed run per seed."""
  # pylint: disable=g-import-not-at-top  # JAX only once the flags are good.
  from tavit_jax.training.config_check import validate
  for run in runs:
    try:
      validate(run.load())
    except TavitError as e:
      raise TavitError(f"run {run.name} ({os.path.relpath(run.config, ROOT)}): {e}") from None


def _main(argv) -> None:
  no_arguments(argv)
  started = time.time()
  out = files.resolve(_OUT.value)
  columns, gain, runs = plan(_TABLE.value, _SIZE.value, _SEEDS.value, _TASKS.value,
                             _parse_overrides(_OVERRIDE.value), _DATA_DIR.value, _COLUMNS.value,
                             split=_EVAL_SPLIT.value, runs_dir=os.path.join(out, "runs"),
                             limits=_integers(_TRAIN_IMAGES), budgets=_integers(_BUDGETS))
  split = runs[0].load().data.get("eval_split", "test")
  _validate(runs)
  workdir = lambda run: os.path.join(out, "runs", run.name)
  log_path = lambda run: os.path.join(out, "logs", f"{run.name}.log")
  os.makedirs(os.path.join(out, "logs"), exist_ok=True)
  pending = [run for run in runs if _finished(run, workdir(run)) is None]
  print(f"{len(runs)} runs, {len(runs) - len(pending)} already finished; logs in "
        f"{os.path.join(out, 'logs')}", flush=True)
  failed, done = [], 0
  # Runs that start from another run's body (train.body_from) wait for it: a second wave.
  for wave in ([r for r in pending if not r.after], [r for r in pending if r.after]):
    ready = [r for r in wave if not set(r.after) & set(failed)]
    failed += [f"{r.name} (needs {', '.join(sorted(set(r.after) & set(failed)))})"
               for r in wave if r not in ready]
    with concurrent.futures.ThreadPoolExecutor(max_workers=_JOBS.value) as pool:
      futures = {pool.submit(_execute, run, workdir(run), log_path(run)): run for run in ready}
      for future in concurrent.futures.as_completed(futures):
        run, code, done = futures[future], future.result(), done + 1
        status = "done" if code == 0 else f"FAILED (exit {code}; see {log_path(run)})"
        print(f"[{done}/{len(pending)}] {run.name}: {status}, {_wall(workdir(run)):.0f} s",
              flush=True)
        if code != 0:
          failed.append(run.name)
  finished = [(run, _finished(run, workdir(run))) for run in runs]
  wire_lines = []
  if _TABLE.value == "privacy":
    for run, rows in finished:
      if rows and _ATTACK_STEPS.value and _attack(run, workdir(run), log_path(run)) != 0:
        failed.append(f"{run.name} (attack)")
    wire_lines, frontier = _wire_table(runs, workdir, columns)
  elif _TABLE.value == "systems":
    wire_lines = _systems_bytes(runs, columns)
  rows = tables.aggregate([(run.column, r) for run, r in finished if r and run.column in columns],
                          columns)
  if not rows:
    raise TavitError(f"no run finished; see the logs in {os.path.join(out, 'logs')}")
  name = f"{_TABLE.value}_{_SIZE.value}"
  if _TABLE.value == "privacy" and columns[0] in frontier and len(frontier) > 1:
    tables.plot_frontier(rows, columns[0], frontier, os.path.join(out, f"{name}_frontier.png"),
                         f"restoration cost vs strongest attack, {_SIZE.value} size, "
                         f"{_SEEDS.value} seed(s)")
    wire_lines += [f"![frontier]({name}_frontier.png)", ""]
  command = "python experiments/compare.py " + " ".join(sys.argv[1:])
  seeds = ", ".join(map(str, range(_SEEDS.value)))
  train_seconds = sum(_wall(workdir(run)) for run in runs)
  lines = [f"### {_TABLE.value} ({_SIZE.value} size)", "",
           f"`{command}`", "",
           f"Seeds {seeds}; {sum(r is not None for _, r in finished)}/{len(runs)} runs finished; "
           f"training wall time {train_seconds / 60:.1f} min summed over runs "
           f"(this invocation {(time.time() - started) / 60:.1f} min); {_machine()}; commit "
           f"{_commit()}; {datetime.date.today()}. Output PSNR (dB, mean ± std over seeds) / "
           f"SSIM (mean) on the held-out {'test' if split == 'test' else 'validation'} images, "
           f"after the last phase.", "",
           *tables.markdown(rows, columns, gain, with_published=_SIZE.value == "paper"), "",
           *wire_lines, f"![{name}]({name}.png)"]
  levels = studies.levels(_TABLE.value, _integers(_TRAIN_IMAGES), _integers(_BUDGETS))
  if levels:
    lines += ["", *tables.differences_markdown(rows, levels), "",
              f"![{name} differences]({name}_differences.png)"]
    tables.plot_differences(rows, levels, os.path.join(out, f"{name}_differences.png"),
                            f"{_TABLE.value}, {_SIZE.value} size, {_SEEDS.value} seed(s)")
  with open(os.path.join(out, f"{name}.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  tables.write_csv(rows, columns, os.path.join(out, f"{name}.csv"))
  tables.plot(rows, columns, os.path.join(out, f"{name}.png"),
              f"{_TABLE.value}, {_SIZE.value} size, {_SEEDS.value} seed(s)")
  print("\n".join(lines))
  print(f"\n{name}.md, .csv and .png in {out}")
  if failed:
    raise TavitError(f"{len(failed)} run(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
  run_app(_main)
