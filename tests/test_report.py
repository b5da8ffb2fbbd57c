"""Run reports: CSV/Markdown tables, the sample grid and the PSNR plot."""

import csv

import numpy as np
from PIL import Image
import pytest

from tavit_jax.evaluation import report


@pytest.fixture
def rows():
  def row(phase, name, task, eval_set, inp, out, **extra):
    return {"phase": phase, "phase_name": name, "step": 100 * (phase + 1), "task": task,
            "eval_set": eval_set, "input/psnr": inp, "input/ssim": 0.25,
            "output/psnr": out, "output/ssim": 0.7, **extra}

  return [
      row(0, "cycle 1 client", "denoising", "sigma30", 19.1, 25.0),
      row(0, "cycle 1 client", "deraining", "rain100l", 25.5, 28.0),
      row(1, "cycle 1 server", "denoising", "sigma30", 19.1, 27.3),
      row(1, "cycle 1 server", "deraining", "rain100l", 25.5, 30.25,
          **{"output/psnr_y": 28.414, "output/ssim_y": 0.8123, "input/psnr_y": 27.0}),
      row(2, "cycle 2 client", "denoising", "sigma30", 19.1, 28.0),
      row(2, "cycle 2 client", "deblocking", "q10", 25.67, 27.5,
          **{"output/psnr_y": 29.0, "output/ssim_y": 0.8, "output/psnrb_y": 27.4}),
  ]


def test_csv_has_every_row_and_the_union_of_columns(rows, tmp_path):
  report.write_tables(rows, str(tmp_path))
  with open(tmp_path / "results.csv") as f:
    read = list(csv.DictReader(f))
  assert len(read) == len(rows)
  union = {key for row in rows for key in row}
  assert set(read[0]) == union
  assert read[0]["output/psnr_y"] == ""
  assert float(read[5]["output/psnrb_y"]) == 27.4


def _table(markdown, title):
  """The data lines of the Markdown table under a heading containing `title`."""
  lines = markdown.splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("##") and title in line)
  table = []
  for line in lines[start + 2:]:
    if not line.startswith("|"):
      break
    table.append([cell.strip() for cell in line.strip("|").split("|")])
  return table[0], table[2:]


def test_final_table_shows_last_phase_and_gain(rows, tmp_path):
  markdown = report.write_tables(rows, str(tmp_path))
  assert (tmp_path / "results.md").read_text() == markdown
  assert "cycle 2 client" in markdown.splitlines()[0]
  header, body = _table(markdown, "Final")
  assert header[:5] == ["task", "eval set", "input PSNR / SSIM", "output PSNR / SSIM", "gain (dB)"]
  assert [line[:2] for line in body] == [["denoising", "sigma30"], ["deblocking", "q10"]]
  assert body[0][2:5] == ["19.10 / 0.250", "28.00 / 0.700", "+8.90"]
  assert body[1][4] == "+1.83"
  assert body[1][5] == "Y 29.00 / 0.800; PSNR-B Y 27.40"


def test_per_phase_table_has_one_column_per_phase(rows, tmp_path):
  markdown = report.write_tables(rows, str(tmp_path))
  header, body = _table(markdown, "per phase")
  phases = ["cycle 1 client", "cycle 1 server", "cycle 2 client"]
  assert header == ["task", "eval set", "input"] + phases
  by_set = {tuple(line[:2]): line[2:] for line in body}
  assert by_set[("denoising", "sigma30")] == ["19.10", "25.00", "27.30", "28.00"]
  assert by_set[("deraining", "rain100l")] == ["25.50", "28.00", "30.25", "–"]
  assert by_set[("deblocking", "q10")] == ["25.67", "–", "–", "27.50"]


def test_tables_accept_rows_read_back_from_csv(rows, tmp_path):
  report.write_tables(rows, str(tmp_path / "a"))
  with open(tmp_path / "a" / "results.csv") as f:
    read = list(csv.DictReader(f))
  again = report.write_tables(read, str(tmp_path / "b"))
  assert again == (tmp_path / "a" / "results.md").read_text()


def test_sample_grid_size(tmp_path):
  rng = np.random.default_rng(0)

  def triple(h, w):
    return tuple(rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(3))

  samples = [("big", *triple(300, 200)), ("small", *triple(40, 50)), ("wide", *triple(20, 500))]
  path = tmp_path / "grid" / "samples.png"
  report.save_sample_grid(samples, str(path), max_side=128)
  # Columns as wide as the widest crop (128); rows as tall as their own crops.
  m, label = report.GRID_MARGIN, report.GRID_LABEL
  with Image.open(path) as image:
    assert image.size == (
        3 * (128 + m) + m,
        report.GRID_HEADER + sum(label + h + m for h in (128, 40, 20)) + m)
    pixels = np.asarray(image.convert("RGB"))
  # The big sample's output is centre-cropped; the small one's input sits uncropped at the
  # top-left of its cell.
  top, left = report.GRID_HEADER + label, m + (128 + m)
  expected = samples[0][2][86:214, 36:164]
  np.testing.assert_array_equal(pixels[top:top + 128, left:left + 128], expected)
  top = report.GRID_HEADER + (label + 128 + m) + label
  np.testing.assert_array_equal(pixels[top:top + 40, m:m + 50], samples[1][1])


def test_plot_psnr_writes_a_png(rows, tmp_path):
  path = tmp_path / "psnr.png"
  report.plot_psnr(rows, str(path))
  with Image.open(path) as image:
    image.verify()
    assert image.format == "PNG"
