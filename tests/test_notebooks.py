"""colab/: every notebook executed top to bottom on CPU with small parameters (the CI
values appended to its `parameters` cell), and committed without outputs."""

import glob
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys

import nbclient
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))


def execute(name: str, parameters: str, cwd) -> list[dict]:
  """Runs colab/<name>.ipynb in `cwd`; returns every output of every cell."""
  notebook = nbformat.read(os.path.join(ROOT, "colab", f"{name}.ipynb"), as_version=4)
  cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
  cell.source += "\n# The CI test's values:\n" + parameters
  client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                   resources={"metadata": {"path": str(cwd)}})
  client.execute()
  return [output for c in notebook.cells if c.cell_type == "code" for output in c.outputs]


def text(outputs) -> str:
  parts = []
  for output in outputs:
    parts.append(output.get("text", ""))
    parts.append(output.get("data", {}).get("text/markdown", ""))
  return "\n".join(parts)


def images(outputs) -> int:
  return sum("image/png" in output.get("data", {}) for output in outputs)


@pytest.fixture
def data_env(data_dir, monkeypatch):
  """The kernel inherits the environment: its runs read the tests' tiny dataset."""
  monkeypatch.setenv("TAVIT_DATA_DIR", data_dir)
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")


def test_every_notebook_is_committed_without_outputs_and_opens_with_its_badge():
  assert {os.path.basename(p) for p in NOTEBOOKS} == {
      "quickstart.ipynb", "paper_reproduction.ipynb", "official_weights.ipynb", "wire.ipynb"}
  readme = open(os.path.join(ROOT, "README.md")).read()
  for path in NOTEBOOKS:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
      if cell.cell_type == "code":
        assert not cell.outputs and cell.execution_count is None, path
    badge = f"colab/{os.path.basename(path)}"
    assert badge in notebook.cells[0].source and badge in readme, path


def install_cell(path: str) -> str:
  notebook = nbformat.read(path, as_version=4)
  return next(c.source for c in notebook.cells if "TAVIT_SOURCE = " in c.source)


@pytest.mark.parametrize("have, gpu, pip_args", [
    ("99.0.0", True, ["jax==99.0.0"]),  # Meets the bound: kept, whatever the machine.
    ("0.4.30", True, ["jax[cuda12]"]),  # Too old on a GPU: replaced, with CUDA.
    ("0.4.30", False, []),  # Too old on a CPU: pip's choice.
    (None, False, []),
])
def test_the_install_cell_keeps_a_runtime_jax_that_meets_the_bound(monkeypatch, capsys, have,
                                                                    gpu, pip_args):
  """Every notebook's install cell (the same in all), run as if tavit_jax were not installed
  and in a runtime whose jax is `have`; pip is not run, only its command recorded."""
  assert len({install_cell(path) for path in NOTEBOOKS}) == 1
  source = install_cell(NOTEBOOKS[0]).replace(
      'TAVIT_SOURCE = "https://github.com/tavit-jax/tavit_jax"', f"TAVIT_SOURCE = {ROOT!r}")
  find_spec, version = importlib.util.find_spec, importlib.metadata.version

  def runtime_version(name):
    if name != "jax":
      return version(name)
    if have is None:
      raise importlib.metadata.PackageNotFoundError(name)
    return have

  commands = []
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name in ("tavit_jax", "libtpu") else find_spec(name, *a))
  monkeypatch.setattr(importlib.metadata, "version", runtime_version)
  monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi" if gpu else None)
  monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))
  monkeypatch.setattr(sys, "path", list(sys.path))
  monkeypatch.setenv("JAX_PLATFORMS", "")  # The warning below is judged on jax's backend.
  exec(source, {})  # pylint: disable=exec-used
  assert commands == [[sys.executable, "-m", "pip", "install", "-q", "-e", ROOT, *pip_args]]
  shown = capsys.readouterr().out
  assert f"tavit_jax from {ROOT}" in shown
  assert ('pip install -U "jax[cuda12]"' in shown) == gpu  # This jax runs on the CPU.


@pytest.mark.slow
def test_quickstart_trains_shows_results_restores_and_exports(data_env, tmp_path):
  outputs = execute("quickstart", 'SIZE = "ci"', tmp_path)
  shown = text(outputs)
  for eval_set in ("| denoising | sigma30 |", "| deraining | light |", "| deraining | heavy |"):
    assert eval_set in shown  # The results table, every eval set.
  assert "clients run one after another" in shown and "PSNR to the clean photo" in shown
  assert images(outputs) >= 3  # PSNR plot, sample grid, before/after.
  assert "largest difference to the workdir's model" in shown  # Asserted < 1e-4 inside.
  assert (tmp_path / "quickstart_run_export" / "restore.jaxexport").exists()


@pytest.mark.slow
def test_paper_reproduction_runs_its_code_paths_on_the_tiny_data(data_dir, tmp_path):
  outputs = execute("paper_reproduction", f'SIZE = "ci"\nDATA_DIR = {data_dir!r}\n'
                    f'RUNS_DIR = "runs"\nCHUNK_STEPS = 2\nTASKS = ["denoising"]', tmp_path)
  shown = text(outputs)
  assert "still to train: nothing" in shown
  assert "| denoising / sigma30 |" in shown and "Multi − Single (dB)" in shown
  assert sorted(os.listdir(tmp_path / "runs")) == ["base_denoising", "multi", "single_denoising"]


@pytest.mark.slow
def test_official_weights_import_restore_and_load_without_tavit_jax(tmp_path):
  torch = pytest.importorskip("torch")
  import test_torch_import  # pylint: disable=g-import-not-at-top
  from tavit_jax import models  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  paths = {}
  for part, module in zip(("head", "body", "tail"),
                          test_torch_import._torch_modules(models.tiny_config())):  # pylint: disable=protected-access
    paths[part] = str(tmp_path / f"TAViT_deblocking_{part}.pt")
    torch.save(module.state_dict(), paths[part])
  outputs = execute("official_weights", f'HEAD, BODY, TAIL = {paths["head"]!r}, '
                    f'{paths["body"]!r}, {paths["tail"]!r}\nMODEL = "tiny"', tmp_path)
  shown = text(outputs)
  assert "jax+numpy-only output vs tavit_jax" in shown and images(outputs) == 1


@pytest.mark.slow
def test_wire_shows_bytes_features_and_attacks(data_env, tmp_path):
  outputs = execute("wire", 'SIZE = "ci"\nATTACK_STEPS = 3', tmp_path)
  shown = text(outputs)
  assert "client-phase step, per client" in shown
  assert shown.count("dB above patch mean") == 2  # Plain and permuted attack tables.
  assert "probe" in shown and "(strongest)" in shown
  assert images(outputs) == 3  # f_H/f_B figure and one attack grid per run.
