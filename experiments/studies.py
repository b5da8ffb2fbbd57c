"""The runs of the tables that ask where the shared body pays (issue 28; EXPERIMENTS.md):
new-task transfer, data-limited clients and the budget curve. experiments/compare.py runs
them like its other tables (resumable workdirs, --seeds, --jobs, --size, --tasks).

transfer: leave task T out, train TAViT on the others (a donor run, in no column); then
T's clients train only their heads and tails (`train.server_phase_steps=0`) through a
body that stays frozen: at its initialisation, Single's (trained on T alone) or the
donor's (`train.body_from`); Base (T end to end) beside them. Same client steps in every
newcomer column. Scored on the validation images by default.
data_limited: Base, Single, Multi with `data.train_images` = 2, 8 and all images per task.
budget: two tasks; Base, Single and Multi (alternating and simultaneous) at 1×, 4×, 16× the
size's cycles; the table is Multi − Single and Multi − Base per budget, with a plot.
"""

import os

from run_spec import ROOT, Run
from tavit_jax.errors import TavitError

TRANSFER_COLUMNS = ["initial body", "own task's body", "other tasks' body", "Base"]
DATA_LIMITS = (2, 8, 0)  # data.train_images per task; 0: all.
BUDGETS = (1, 4, 16)
BUDGET_TASKS = ("denoising", "deraining")
MODES = {"alternating": "", "simultaneous": " sim"}  # Column suffix of each train.mode.


def _spec(kind: str, task: str, size: str) -> str:
  return os.path.join(ROOT, "configs", f"baselines.py:{kind},{task},{size}")


def _limit(n: int) -> str:
  return "all" if n == 0 else str(n)


def transfer(size, seeds, held_out, all_tasks, multi, multi_clients, common, runs_dir, suffix):
  """(columns, gain, runs): per held-out task and seed, a donor on the other tasks, Single
  on the task, three newcomers through frozen bodies and Base."""
  if len(all_tasks) < 2:
    raise TavitError(f"--table=transfer leaves one task out: configs/{size}.py needs at least "
                     f"two tasks, it has {', '.join(all_tasks)}")
  runs = []
  for seed in range(seeds):
    s = common + (("seed", seed),)
    for task in held_out:
      donor = Run("", f"donor_without_{task}_seed{seed}{suffix}", multi,
                  s + (("clients", tuple(c for c in multi_clients if c != task)),))
      single = Run("", f"single_{task}_seed{seed}{suffix}", _spec("single", task, size), s)
      frozen = s + (("train.server_phase_steps", 0),)
      newcomer = lambda column, body, source: Run(
          column, f"newcomer_{task}_{body}_seed{seed}{suffix}", _spec("single", task, size),
          frozen + ((("train.body_from", os.path.join(runs_dir, source.name)),) if source else ()),
          (source.name,) if source else ())
      runs += [donor, single, newcomer("initial body", "initial", None),
               newcomer("own task's body", "own", single),
               newcomer("other tasks' body", "others", donor),
               Run("Base", f"base_{task}_seed{seed}{suffix}", _spec("base", task, size), s)]
  return list(TRANSFER_COLUMNS), ("other tasks' body", "initial body"), runs


def data_limited(size, seeds, tasks, multi, multi_only, common, suffix, limits=DATA_LIMITS):
  """Base, Single and Multi at each number of training images per task (all: the
  baselines table's runs, shared with it)."""
  columns, runs = [], []
  for n in limits:
    columns += [f"{kind} N={_limit(n)}" for kind in ("Base", "Single", "Multi")]
    limit, tag = (("data.train_images", n),) if n else (), f"_n{n}" if n else ""
    for seed in range(seeds):
      s = common + (("seed", seed),) + limit
      for task in tasks:
        for kind in ("base", "single"):
          runs.append(Run(f"{kind.capitalize()} N={_limit(n)}",
                          f"{kind}_{task}{tag}_seed{seed}{suffix}", _spec(kind, task, size), s))
      runs.append(Run(f"Multi N={_limit(n)}", f"multi{tag}_seed{seed}{suffix}", multi,
                      s + multi_only))
  return columns, None, runs


def budget(size, seeds, tasks, multi, multi_clients, cycles, common, suffix, budgets=BUDGETS):
  """Base, Single and Multi of two tasks, alternating and simultaneous, at each multiple
  of the size's cycles."""
  clients = tuple(c for c in multi_clients if c in tasks)
  columns, runs = [], []
  for k in budgets:
    columns += [f"Base {k}×"] + [f"{kind}{tag} {k}×" for tag in MODES.values()
                                 for kind in ("Single", "Multi")]
  for k in budgets:
    longer = (("train.cycles", k * cycles),) if k != 1 else ()
    tag_k = f"_x{k}" if k != 1 else ""
    for seed in range(seeds):
      s = common + (("seed", seed),) + longer
      for task in tasks:
        runs.append(Run(f"Base {k}×", f"base_{task}{tag_k}_seed{seed}{suffix}",
                        _spec("base", task, size), s))
      for mode, tag in MODES.items():
        m = (("train.mode", mode),) if mode != "alternating" else ()
        name_mode = "_sim" if mode != "alternating" else ""
        for task in tasks:
          runs.append(Run(f"Single{tag} {k}×", f"single_{task}{name_mode}{tag_k}_seed{seed}{suffix}",
                          _spec("single", task, size), s + m))
        runs.append(Run(f"Multi{tag} {k}×",
                        f"multi_{'_'.join(tasks)}{name_mode}{tag_k}_seed{seed}{suffix}", multi,
                        s + m + (("clients", clients),)))
  return columns, None, runs


def levels(table: str, limits=DATA_LIMITS, budgets=BUDGETS) -> list[tuple[str, str, dict]]:
  """The points of the difference table and plot: (series, x label, {'Base', 'Single',
  'Multi': column})."""
  if table == "data_limited":
    return [("", f"N={_limit(n)}", {k: f"{k} N={_limit(n)}" for k in ("Base", "Single", "Multi")})
            for n in limits]
  if table == "budget":
    return [(mode, f"{k}×", {"Base": f"Base {k}×", "Single": f"Single{tag} {k}×",
                             "Multi": f"Multi{tag} {k}×"})
            for mode, tag in MODES.items() for k in budgets]
  return []
