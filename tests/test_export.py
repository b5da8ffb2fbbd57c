"""Export → restore → evaluate round trip on a briefly trained configs/tiny.py run.

Training happens once (module fixture, about 90 s on 2 CPU cores): 3 client steps, which
end the first client phase, so training has evaluated one test image per eval set at
stride 32. Every path below must reproduce those numbers.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from tavit_jax import files
from tavit_jax.data import pipeline
from tavit_jax.data.images import to_unit
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import metrics
from tavit_jax.serving import artifact, export, inference, sources
from tavit_jax.training.loop import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRIDE = 32  # configs/tiny.py's eval.stride.
# Exported program vs in-process jit of the same model, outputs in [-1, 1]: the two are
# compiled separately (symbolic batch, multi-platform lowering), so allow float rounding.
ATOL = 1e-5
CPU = ("cpu",)  # Lowering for all four platforms is what the README walkthrough tests.


def tiny_config(data_dir):
  spec = importlib.util.spec_from_file_location("tiny", os.path.join(ROOT, "configs", "tiny.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.data_dir = data_dir
  return config


def run_module(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
  """(workdir, training eval rows, exported denoising model, exported deraining model)."""
  workdir = str(tmp_path_factory.mktemp("run"))
  rows = train_and_evaluate(tiny_config(data_dir), workdir, max_steps=3)
  exported = {name: str(tmp_path_factory.mktemp("exported") / name)
              for name in ("denoising", "deraining_1")}
  result = run_module("tavit_jax.cli.export", f"--workdir={workdir}", "--client=denoising",
                      "--platforms=cpu",
                      f"--out={exported['denoising']}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == f"exported denoising_0 (denoising) at step 3 to {exported['denoising']}"
  export.export(workdir, exported["deraining_1"], client="deraining_1", platforms=CPU)
  return workdir, rows, exported


def row(rows, task, eval_set):
  (found,) = [r for r in rows if (r["task"], r["eval_set"]) == (task, eval_set)]
  return found


def test_export_writes_the_chosen_client_and_its_config(run):
  workdir, _, exported = run
  info = artifact.read_info(exported["deraining_1"])
  assert (info["client"], info["task"], info["step"], info["patch_size"]) == ("deraining_1", "deraining", 3, 32)
  assert info["timestep"] == 0 and info["seed"] == 0
  with open(os.path.join(workdir, "config.json")) as f:
    assert info["model"] == json.load(f)["model"]
  assert artifact.read_info(exported["denoising"])["client"] == "denoising_0"
  params = artifact.read(exported["deraining_1"])[0]
  expected = sources.from_workdir(workdir, "deraining_1").params
  assert files.flatten(params).keys() == files.flatten(expected).keys()
  for key, value in files.flatten(expected).items():
    np.testing.assert_array_equal(files.flatten(params)[key], value, err_msg=key)


STANDALONE = """\
import sys

class BlockTavitAndFlax:
  def find_spec(self, name, path=None, target=None):
    if name.partition(".")[0] in ("tavit_jax", "flax"):
      raise ImportError(f"{{name}} is blocked in this test")
    return None

sys.meta_path.insert(0, BlockTavitAndFlax())
for blocked in ("tavit_jax", "flax"):
  try:
    __import__(blocked)
  except ImportError:
    pass
  else:
    raise SystemExit(f"{{blocked}} could be imported")

{loader}
patches = np.load("{patches}")
for n in (2, 5):
  np.save(f"{out}/restored_{{n}}.npy", np.asarray(restore(params, patches[:n])))
assert not [m for m in sys.modules if m.partition(".")[0] in ("tavit_jax", "flax")]
print("ok", info["client"], info["patch_size"])
"""


def test_exported_model_runs_with_jax_and_numpy_only(run, tmp_path):
  workdir, _, exported = run
  folder = exported["deraining_1"]
  patches = np.random.default_rng(0).uniform(-1, 1, (5, 32, 32, 3)).astype(np.float32)
  np.save(tmp_path / "patches.npy", patches)
  script = STANDALONE.format(loader=artifact.LOADER.format(folder=folder),
                             patches=tmp_path / "patches.npy", out=tmp_path)
  result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == "ok deraining_1 32"
  # In process: jit(model.apply) on the workdir's checkpoint; patches are independent.
  in_process = inference.load(workdir, "deraining_1")
  assert in_process.client == "deraining_1"
  expected = in_process.restore_patches(patches)
  for n in (2, 5):
    np.testing.assert_allclose(np.load(tmp_path / f"restored_{n}.npy"), expected[:n], atol=ATOL, rtol=0)


def test_readme_of_the_export_shows_the_tested_loader(run):
  with open(os.path.join(run[2]["denoising"], artifact.README_FILE)) as f:
    assert artifact.LOADER.format(folder=".") in f.read()


def test_restore_cli_output_has_the_psnr_training_measured(run, data_dir, tmp_path):
  _, rows, exported = run
  image = next(pipeline.eval_images("denoising", "sigma30", suite="tiny", data_dir=data_dir))
  PIL.Image.fromarray(image["input"]).save(tmp_path / "noisy.png")
  result = run_module("tavit_jax.cli.restore", f"--model={exported['denoising']}",
                      str(tmp_path / "noisy.png"), f"--out={tmp_path / 'out'}", f"--stride={STRIDE}")
  assert result.returncode == 0, result.stderr[-3000:]
  restored = np.asarray(PIL.Image.open(tmp_path / "out" / "noisy.png"))
  assert restored.shape == image["target"].shape
  psnr = float(metrics.psnr(to_unit(restored), to_unit(image["target"])))
  assert psnr == pytest.approx(row(rows, "denoising", "sigma30")["output/psnr"], abs=1e-3)


def test_eval_cli_reproduces_training_evaluation(run, data_dir, tmp_path):
  _, rows, exported = run
  result = run_module("tavit_jax.cli.evaluate", f"--model={exported['deraining_1']}",
                      "--dataset=tavit_default/tiny:test", f"--data_dir={data_dir}",
                      f"--stride={STRIDE}", "--max_images=1", f"--out={tmp_path}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| deraining | light |" in result.stdout and "| deraining | heavy |" in result.stdout
  for name in ("results.md", "results.csv", "per_image.csv"):
    assert os.path.exists(tmp_path / name), name
  import csv  # pylint: disable=g-import-not-at-top
  with open(tmp_path / "results.csv") as f:
    evaluated = list(csv.DictReader(f))
  assert [r["eval_set"] for r in evaluated] == ["light", "heavy"]
  for got in evaluated:
    expected = row(rows, "deraining", got["eval_set"])
    keys = [k for k in expected if "/" in k]
    assert set(keys) == {k for k in got if "/" in k}
    assert {"output/psnr_y", "output/ssim_y"} <= set(keys)  # The task's convention.
    for key in keys:
      assert float(got[key]) == pytest.approx(expected[key], abs=1e-3), key


def test_choosing_clients_and_steps_of_a_workdir(run, tmp_path):
  workdir, _, exported = run
  with pytest.raises(TavitError, match="clients denoising_0, denoising_1, deraining_0, deraining_1"):
    export.export(workdir, str(tmp_path / "a"))  # Two tasks: which one?
  with pytest.raises(TavitError, match="no client or task 'deblurring'"):
    export.export(workdir, str(tmp_path / "a"), client="deblurring")
  with pytest.raises(TavitError, match="no checkpoint at step 7; steps: 2, 3"):
    inference.load(workdir, "denoising_1", step=7)
  assert inference.load(workdir, "denoising_1", step=2).step == 2
  assert inference.load(workdir, "deraining").client == "deraining_0"  # A task: its first client.
  with pytest.raises(TavitError, match="holds only deraining_1 \\(deraining\\), not 'denoising'"):
    inference.load(exported["deraining_1"], "denoising")
  with pytest.raises(TavitError, match="already an exported model"):
    export.export(exported["denoising"], str(tmp_path / "b"))
  (tmp_path / "busy").mkdir()
  (tmp_path / "busy" / "notes.txt").write_text("mine")
  with pytest.raises(TavitError, match="not empty and holds no exported model"):
    export.export(workdir, str(tmp_path / "busy"), client="denoising", platforms=CPU)


def test_relative_paths_from_python(run, tmp_path, monkeypatch):
  workdir, _, _ = run
  monkeypatch.chdir(os.path.dirname(workdir))
  relative = os.path.basename(workdir)
  assert inference.load(relative, "deraining_1").step == 3  # orbax itself wants absolute paths.
  monkeypatch.chdir(tmp_path)
  export.export(os.path.relpath(workdir), "exported/denoising", client="denoising", platforms=CPU)
  assert inference.load("exported/denoising").info["source"] == workdir


def copy_of_checkpoint(workdir, tmp_path):
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy)
  return copy, os.path.join(copy, "checkpoints", "3", "state")


@pytest.mark.parametrize("damage", ["truncated data", "no metadata", "garbled metadata"])
def test_damaged_checkpoint_is_named(run, tmp_path, damage):
  copy, state = copy_of_checkpoint(run[0], tmp_path)
  if damage == "truncated data":
    for name in os.listdir(os.path.join(state, "d")):
      path = os.path.join(state, "d", name)
      os.truncate(path, os.path.getsize(path) // 2)
  elif damage == "no metadata":
    os.remove(os.path.join(state, "_METADATA"))
  else:
    with open(os.path.join(state, "_METADATA"), "w") as f:
      f.write("{not json")
  with pytest.raises(TavitError, match=f"^{re.escape(state)}: not a readable training checkpoint"):
    sources.from_workdir(copy, "denoising")


def test_library_error_on_a_readable_checkpoint_keeps_its_traceback(run, monkeypatch):
  """Only damaged files are the user's fault; anything else is a bug to see whole."""
  def fail(*args, **kwargs):
    raise ValueError("Checkpoint path should be absolute.")  # What orbax said to relative paths.

  monkeypatch.setattr(sources.ocp.PyTreeCheckpointHandler, "restore", fail)
  with pytest.raises(ValueError, match="should be absolute"):
    sources.from_workdir(run[0], "denoising")
