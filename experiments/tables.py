"""The comparison tables of experiments/compare.py: means ± std over seeds, Markdown, CSV, plot.

Input: per finished run, its final evaluation rows (`results.json` of a tavit-train
workdir, last phase). Output rows: one per (task, eval set) with each column's mean and
standard deviation over seeds.
"""

import collections
import csv
import os
from typing import Optional, Sequence

import numpy as np

# docs/design.md §3.6: the official model's published PSNR / SSIM (paper datasets, paper protocol).
PUBLISHED = {
    ("deblocking", "q10"): {"input": (25.67, 0.719), "Base": (27.67, 0.785), "Single": (27.59, 0.785), "Multi": (27.69, 0.786)},
    ("deblocking", "q50"): {"input": (31.51, 0.902), "Base": (33.01, 0.923), "Single": (32.93, 0.924), "Multi": (33.20, 0.924)},
    ("denoising", "cbsd68_sigma30"): {"input": (19.03, 0.336), "Base": (30.43, 0.864), "Single": (30.65, 0.870), "Multi": (30.69, 0.871)},
    ("deraining", "rain100h"): {"input": (12.13, 0.349), "Base": (28.88, 0.863), "Single": (28.95, 0.864), "Multi": (29.35, 0.875)},
    ("deraining", "rain100l"): {"input": (25.52, 0.825), "Base": (32.93, 0.937), "Single": (32.50, 0.935), "Multi": (34.30, 0.949)},
    ("deblurring", "gopro"): {"input": (25.64, 0.790), "Base": (28.62, 0.864), "Single": (29.28, 0.877), "Multi": (30.06, 0.894)},
}


def final_rows(results: list[dict]) -> list[dict]:
  """The rows of the last evaluated phase of one run."""
  last = max(row["phase"] for row in results)
  return [row for row in results if row["phase"] == last]


def aggregate(runs: Sequence[tuple[str, list[dict]]], columns: Sequence[str]) -> list[dict]:
  """runs: (column, final rows of one seed). One row per (task, eval set) in first-seen order:
  {'task', 'eval_set', 'input/psnr': [values over seeds and runs], '<column>/psnr': [...], ...}."""
  table = collections.OrderedDict()
  for column, rows in runs:
    for row in rows:
      entry = table.setdefault((row["task"], row["eval_set"]), collections.defaultdict(list))
      for metric in ("psnr", "ssim"):
        entry[f"{column}/{metric}"].append(row[f"output/{metric}"])
        entry[f"input/{metric}"].append(row[f"input/{metric}"])
  ordered = []
  for (task, eval_set), values in table.items():
    ordered.append({"task": task, "eval_set": eval_set,
                    **{key: values.get(key, []) for key in
                       [f"{c}/{m}" for c in ("input", *columns) for m in ("psnr", "ssim")]}})
  return ordered


def _cell(values: list[float], ssim: list[float], spread: bool = True) -> str:
  if not values:
    return "—"
  spread = f" ± {np.std(values):.2f}" if spread and len(values) > 1 else ""
  return f"{np.mean(values):.2f}{spread} / {np.mean(ssim):.3f}"


def _published(task: str, eval_set: str, columns: Sequence[str]) -> Optional[str]:
  published = PUBLISHED.get((task, eval_set))
  if published is None:
    return None
  return " · ".join(f"{c} {published[c][0]:.2f}" for c in ("input", *columns) if c in published)


def markdown(rows: list[dict], columns: Sequence[str], gain: Optional[tuple[str, str]],
             with_published: bool = False) -> list[str]:
  """A Markdown table: input, each column (PSNR mean ± std over seeds / SSIM mean), and the
  gain of gain[0] over gain[1] in PSNR."""
  header = ["task / set", "input", *columns]
  if gain:
    header.append(f"{gain[0]} − {gain[1]} (dB)")
  if with_published:
    header.append("published (PSNR)")
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in rows:
    cells = [f"{row['task']} / {row['eval_set']}",
             _cell(row["input/psnr"], row["input/ssim"], spread=False),
             *(_cell(row[f"{c}/psnr"], row[f"{c}/ssim"]) for c in columns)]
    if gain:
      a, b = row[f"{gain[0]}/psnr"], row[f"{gain[1]}/psnr"]
      cells.append(f"{np.mean(a) - np.mean(b):+.2f}" if a and b else "—")
    if with_published:
      cells.append(_published(row["task"], row["eval_set"], columns) or "—")
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def write_csv(rows: list[dict], columns: Sequence[str], path: str) -> None:
  """One line per (task, eval set, column): mean and std of PSNR and SSIM, and each seed's PSNR."""
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["task", "eval_set", "column", "psnr_mean", "psnr_std", "ssim_mean",
                     "ssim_std", "psnr_per_seed"])
    for row in rows:
      for column in ("input", *columns):
        psnr, ssim = row[f"{column}/psnr"], row[f"{column}/ssim"]
        if psnr:
          writer.writerow([row["task"], row["eval_set"], column, f"{np.mean(psnr):.4f}",
                           f"{np.std(psnr):.4f}", f"{np.mean(ssim):.4f}", f"{np.std(ssim):.4f}",
                           " ".join(f"{v:.4f}" for v in psnr)])


def plot(rows: list[dict], columns: Sequence[str], path: str, title: str) -> None:
  """Grouped bars: each column's PSNR gain over the input per eval set, ± std over seeds."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  figure = Figure(figsize=(max(6.0, 1.3 * len(rows) + 2), 4.5), layout="constrained")
  axes = figure.add_subplot()
  width = 0.8 / max(len(columns), 1)
  for i, column in enumerate(columns):
    xs, gains, errors = [], [], []
    for x, row in enumerate(rows):
      if row[f"{column}/psnr"]:
        xs.append(x + (i - (len(columns) - 1) / 2) * width)
        gains.append(np.mean(row[f"{column}/psnr"]) - np.mean(row["input/psnr"]))
        errors.append(np.std(row[f"{column}/psnr"]))
    axes.bar(xs, gains, width, yerr=errors, capsize=3, label=column)
  axes.axhline(0, color="black", linewidth=0.8)
  axes.set_xticks(range(len(rows)), [f"{r['task']}\n{r['eval_set']}" for r in rows], fontsize="small")
  axes.set_ylabel("output − input PSNR (dB)")
  axes.set_title(title)
  axes.grid(axis="y", alpha=0.3)
  axes.legend(fontsize="small")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.savefig(path, dpi=100)


def plot_frontier(rows: list[dict], reference: str, margins: dict, path: str, title: str) -> None:
  """One point per variant: its restoration loss against `reference` (PSNR, mean over eval
  sets and seeds) and its strongest attack's margin over the patch-mean baseline (dB, mean
  over tasks). Lower left is better on both."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  mean = lambda values: float(np.mean(values)) if values else float("nan")
  figure = Figure(figsize=(6.5, 4.5), layout="constrained")
  axes = figure.add_subplot()
  for column, margin in margins.items():
    loss = mean([mean(r[f"{reference}/psnr"]) - mean(r[f"{column}/psnr"]) for r in rows])
    axes.scatter(loss, margin)
    axes.annotate(column, (loss, margin), textcoords="offset points", xytext=(4, 4))
  axes.axhline(0.5, color="gray", linestyle="--", linewidth=0.8)
  axes.axvline(0.2, color="gray", linestyle=":", linewidth=0.8)
  axes.set_xlabel(f"restoration loss against {reference} (dB, mean over eval sets)")
  axes.set_ylabel("strongest attack above patch mean (dB, mean over tasks)")
  axes.set_title(title)
  figure.savefig(path, dpi=120)


def _difference(row: dict, a: str, b: str) -> Optional[tuple[float, float]]:
  """Mean over seeds of column a − column b (PSNR) and its spread: the std of the per-seed
  differences when both have every seed, else 0."""
  x, y = row.get(f"{a}/psnr", []), row.get(f"{b}/psnr", [])
  if not x or not y:
    return None
  spread = float(np.std(np.subtract(x, y))) if len(x) == len(y) else 0.0
  return float(np.mean(x) - np.mean(y)), spread


def differences_markdown(rows: list[dict], levels) -> list[str]:
  """Multi − Single and Multi − Base (dB, mean ± std of per-seed differences) at every level
  (series, label, {'Base', 'Single', 'Multi': column})."""
  names = [f"{series} {label}".strip() for series, label, _ in levels]
  header = ["task / set"] + [f"{n}: Multi − {c}" for n in names for c in ("Single", "Base")]
  lines = ["Multi − Single and Multi − Base, PSNR (dB, mean ± std over seeds of the per-seed "
           "difference):", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in rows:
    cells = [f"{row['task']} / {row['eval_set']}"]
    for _, _, cols in levels:
      for other in ("Single", "Base"):
        found = _difference(row, cols["Multi"], cols[other])
        cells.append("—" if found is None else
                     f"{found[0]:+.2f}" + (f" ± {found[1]:.2f}" if found[1] else ""))
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def plot_differences(rows: list[dict], levels, path: str, title: str) -> None:
  """One panel per eval set: Multi − Single and Multi − Base against the level (budget or
  images), one line per series (e.g. alternating, simultaneous), ± std over seeds."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  figure = Figure(figsize=(4.0 * max(len(rows), 1), 3.8), layout="constrained")
  labels = list(dict.fromkeys(label for _, label, _ in levels))
  for i, row in enumerate(rows):
    axes = figure.add_subplot(1, max(len(rows), 1), i + 1)
    for series in dict.fromkeys(s for s, _, _ in levels):
      for other, style in (("Single", "-o"), ("Base", "--s")):
        points = [(labels.index(label), _difference(row, cols["Multi"], cols[other]))
                  for s, label, cols in levels if s == series]
        points = [(x, d) for x, d in points if d is not None]
        if points:
          axes.errorbar([x for x, _ in points], [d[0] for _, d in points],
                        yerr=[d[1] for _, d in points], fmt=style, capsize=3,
                        label=f"{series} Multi − {other}".strip())
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(labels)), labels)
    axes.set_title(f"{row['task']} / {row['eval_set']}", fontsize="small")
    axes.set_ylabel("PSNR difference (dB)")
    axes.grid(alpha=0.3)
    if i == 0:
      axes.legend(fontsize="x-small")
  figure.suptitle(title)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.savefig(path, dpi=100)
