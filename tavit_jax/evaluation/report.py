"""What a training run leaves for people to read: tables, a PSNR plot and sample images.

Results are row dicts, one per (phase, task, eval set), holding 'phase', 'phase_name',
'step', 'task', 'eval_set' and metrics as 'input/<metric>' and 'output/<metric>'. Rows
may lack metrics and values may be strings (rows read back from the CSV), so every reader
here tolerates both.
"""

import csv
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Row = Mapping[str, Any]
Sample = Tuple[str, np.ndarray, np.ndarray, np.ndarray]

_MISSING = "–"
_MAIN_METRICS = ("psnr", "ssim")

# Sample-grid layout in pixels; tests rely on these to predict the PNG size.
GRID_MARGIN = 4
GRID_HEADER = 16  # column titles
GRID_LABEL = 14  # one label line above each row of crops
GRID_COLUMNS = ("input", "output", "target")


def _num(value: Any) -> Optional[float]:
  """A float, or None for missing / empty / NaN."""
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return None if math.isnan(value) else value


def _fmt(value: Any, decimals: int) -> str:
  value = _num(value)
  return _MISSING if value is None else f"{value:.{decimals}f}"


def _cell(text: Any) -> str:
  return str(text).replace("|", "\\|")


def _phases(rows: Sequence[Row]) -> List[Tuple[Any, str]]:
  """(phase, name) in phase order; a phase without a name is called 'phase N'."""
  names = {}
  for row in rows:
    names.setdefault(row["phase"], row.get("phase_name") or f"phase {row['phase']}")
  return sorted(names.items(), key=lambda item: _num(item[0]) if _num(item[0]) is not None else 0)


def _latest(rows: Sequence[Row]) -> Dict[Tuple[Any, Any, Any], Row]:
  """The last row per (phase, task, eval set), so re-evaluations replace earlier ones."""
  return {(row["phase"], row["task"], row["eval_set"]): row for row in rows}


def _sets(rows: Sequence[Row]) -> List[Tuple[Any, Any]]:
  """(task, eval set) pairs in order of first appearance."""
  return list(dict.fromkeys((row["task"], row["eval_set"]) for row in rows))


def _input_psnr(rows: Sequence[Row], task: Any, eval_set: Any) -> Optional[float]:
  """The degraded input's PSNR; it does not depend on the phase, so the first one found."""
  for row in rows:
    value = _num(row.get("input/psnr"))
    if (row["task"], row["eval_set"]) == (task, eval_set) and value is not None:
      return value
  return None


def _extra_metrics(row: Row) -> str:
  """Task-convention output metrics besides RGB PSNR/SSIM: 'Y 28.41 / 0.812; PSNR-B Y 27.40'."""
  names = [k.split("/", 1)[1] for k in row if k.startswith("output/")]
  names = [n for n in names if n not in _MAIN_METRICS and _num(row[f"output/{n}"]) is not None]
  parts, done = [], set()
  for name in names:
    base, _, suffix = name.partition("_")
    if base in _MAIN_METRICS and suffix:
      if suffix in done:
        continue
      done.add(suffix)
      psnr, ssim = row.get(f"output/psnr_{suffix}"), row.get(f"output/ssim_{suffix}")
      parts.append(f"{suffix.upper()} {_fmt(psnr, 2)} / {_fmt(ssim, 3)}")
    else:
      label = {"psnrb": "PSNR-B"}.get(base, base.upper())
      label = f"{label} {suffix.upper()}" if suffix else label
      parts.append(f"{label} {_fmt(row[f'output/{name}'], 3 if 'ssim' in base else 2)}")
  return "; ".join(parts)


def _final_table(rows: Sequence[Row]) -> List[str]:
  phase, name = _phases(rows)[-1]
  final = [r for key, r in _latest(rows).items() if key[0] == phase]
  extras = [_extra_metrics(r) for r in final]
  step = final[-1].get("step", "")
  lines = [f"## Final results: {_cell(name)}" + (f" (step {step})" if step != "" else ""), ""]
  header = ["task", "eval set", "input PSNR / SSIM", "output PSNR / SSIM", "gain (dB)"]
  header += ["other (output)"] if any(extras) else []
  lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row, extra in zip(final, extras):
    inp, out = _num(row.get("input/psnr")), _num(row.get("output/psnr"))
    gain = _MISSING if inp is None or out is None else f"{out - inp:+.2f}"
    cells = [
        row["task"], row["eval_set"],
        f"{_fmt(inp, 2)} / {_fmt(row.get('input/ssim'), 3)}",
        f"{_fmt(out, 2)} / {_fmt(row.get('output/ssim'), 3)}",
        gain,
    ] + ([extra or _MISSING] if any(extras) else [])
    lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
  return lines


def _phase_table(rows: Sequence[Row]) -> List[str]:
  phases, latest = _phases(rows), _latest(rows)
  header = ["task", "eval set", "input"] + [name for _, name in phases]
  lines = ["## Output PSNR (dB) per phase", ""]
  lines += ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
  for task, eval_set in _sets(rows):
    cells = [task, eval_set, _fmt(_input_psnr(rows, task, eval_set), 2)]
    for phase, _ in phases:
      row = latest.get((phase, task, eval_set), {})
      cells.append(_fmt(row.get("output/psnr"), 2))
    lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
  return lines


def psnr_summary(rows: Sequence[Row]) -> str:
  """One line of input → output PSNR per eval set, for logs and progress bars."""
  return "; ".join(f"{r['task']} {r['eval_set']} {_fmt(r.get('input/psnr'), 2)}→"
                   f"{_fmt(r.get('output/psnr'), 2)} dB" for r in rows)


def write_tables(rows: Sequence[Row], out_dir: str, footer: Sequence[str] = ()) -> str:
  """Writes results.csv (every row and key) and results.md (ending with `footer`'s
  Markdown lines); returns the Markdown."""
  if not rows:
    raise ValueError("write_tables needs at least one result row")
  os.makedirs(out_dir, exist_ok=True)
  columns = list(dict.fromkeys(key for row in rows for key in row))
  with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
  footer = [""] + list(footer) if footer else []
  markdown = "\n".join(_final_table(rows) + [""] + _phase_table(rows) + footer) + "\n"
  with open(os.path.join(out_dir, "results.md"), "w") as f:
    f.write(markdown)
  return markdown


def _rgb(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return image[..., :3].astype(np.uint8)


def _centre_crop(image: np.ndarray, max_side: int) -> np.ndarray:
  height, width = image.shape[:2]
  h, w = min(height, max_side), min(width, max_side)
  top, left = (height - h) // 2, (width - w) // 2
  return image[top:top + h, left:left + w]


def save_sample_grid(samples: Sequence[Sample], path: str, *, max_side: int = 256,
                     columns: Sequence[str] = GRID_COLUMNS) -> None:
  """Writes a PNG with one row per (label, input, output, target) sample (or per label and
  one image for each of `columns`).

  Each image is centre-cropped to at most max_side×max_side (full images would make the
  grid unreadably large). Columns are as wide as the widest crop; each row is as tall as
  its own tallest crop, so small samples do not leave large gaps.
  """
  if not samples:
    raise ValueError("save_sample_grid needs at least one sample")
  crops = [[_centre_crop(_rgb(image), max_side) for image in sample[1:]] for sample in samples]
  cell_w = max(c.shape[1] for row in crops for c in row)
  row_tops = np.cumsum([GRID_HEADER] + [
      GRID_LABEL + max(c.shape[0] for c in row) + GRID_MARGIN for row in crops])
  width = len(columns) * (cell_w + GRID_MARGIN) + GRID_MARGIN
  height = int(row_tops[-1]) + GRID_MARGIN
  canvas = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(canvas)
  font = ImageFont.load_default()
  for col, title in enumerate(columns):
    draw.text((GRID_MARGIN + col * (cell_w + GRID_MARGIN), 2), title, fill="black", font=font)
  for (label, *_), row, top in zip(samples, crops, row_tops.tolist()):
    draw.text((GRID_MARGIN, top + 1), str(label), fill="black", font=font)
    for col, crop in enumerate(row):
      left = GRID_MARGIN + col * (cell_w + GRID_MARGIN)
      canvas.paste(Image.fromarray(crop), (left, top + GRID_LABEL))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  canvas.save(path)


def plot_psnr(rows: Sequence[Row], path: str) -> None:
  """Plots output PSNR per phase for each (task, eval set), input PSNR dashed."""
  # Figure without pyplot: no global state and no GUI backend, safe in training jobs.
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  phases, latest = _phases(rows), _latest(rows)
  figure = Figure(figsize=(max(6.0, 0.9 * len(phases) + 3), 4.5), layout="constrained")
  axes = figure.add_subplot()
  for task, eval_set in _sets(rows):
    xs, ys = [], []
    for x, (phase, _) in enumerate(phases):
      value = _num(latest.get((phase, task, eval_set), {}).get("output/psnr"))
      if value is not None:
        xs.append(x)
        ys.append(value)
    (line,) = axes.plot(xs, ys, marker="o", label=f"{task} / {eval_set}")
    baseline = _input_psnr(rows, task, eval_set)
    if baseline is not None:
      axes.axhline(baseline, color=line.get_color(), linestyle="--", linewidth=1, alpha=0.7)
  crowded = len(phases) > 4
  axes.set_xticks(range(len(phases)), [name for _, name in phases],
                  rotation=30 if crowded else 0, ha="right" if crowded else "center")
  axes.set_xlabel("phase")
  axes.set_ylabel("PSNR (dB)")
  axes.set_title("Output PSNR per phase (dashed: input)")
  axes.grid(alpha=0.3)
  axes.legend(fontsize="small")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.savefig(path, dpi=100)
