"""`tavit-restore` and exported-model loading with bad inputs: one line each, naming the file.

Uses an untrained tiny network exported in a few seconds; restoring quality is tested in
test_export.py.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import PIL.Image
import pytest

from tavit_jax import models
from tavit_jax.cli.restore import expand, output_paths
from tavit_jax.data.images import read_rgb8
from tavit_jax.errors import TavitError
from tavit_jax.serving import artifact, export, inference, sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATCH = 32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """An exported untrained network with the configs/tiny.py model sizes.

  Random weights of the real shapes: eager Flax init takes tens of seconds on a busy CPU.
  """
  config = models.tiny_config()
  config.update(dim=8, attn_heads=2, attn_head_dim=4, body_layers=1, body_heads=2, body_mlp_dim=32)
  model = models.build(config, PATCH)
  shapes = jax.eval_shape(lambda key: {"head": model.init_head(key), "body": model.init_body(key),
                                       "tail": model.init_tail(key)}, jax.random.key(0))
  rng = np.random.default_rng(0)
  params = jax.tree_util.tree_map(lambda s: rng.normal(0, 0.05, s.shape).astype(s.dtype), shapes)
  model_config = json.loads(json.dumps(config.to_dict()))
  info = {"task": "denoising", "client": "denoising_0", "step": 0, "seed": 0, "patch_size": PATCH,
          "timestep": 0, "model": model_config, "source": "untrained"}
  out = str(tmp_path_factory.mktemp("model") / "exported")
  artifact.write(out, params, export.export_program(sources.Trained(params, model_config, info), ("cpu",)), info)
  return out


def restore(*args):
  result = subprocess.run([sys.executable, "-m", "tavit_jax.cli.restore", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  # Progress bars redraw with carriage returns; messages are whole 'error: ...' runs.
  return result.returncode, re.findall(r"error: [^\r\n]*", result.stderr), result


def write_inputs(folder):
  """Good images of awkward kinds, bad files, and a non-image a folder listing skips."""
  rng = np.random.default_rng(0)
  os.makedirs(folder)
  good = {
      "rgb.png": rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),
      "gray.jpg": rng.integers(0, 256, (33, 20), dtype=np.uint8),
      "rgba.png": rng.integers(0, 256, (20, 33, 4), dtype=np.uint8),
      "deep.tif": rng.integers(0, 65536, (25, 31), dtype=np.uint16),
      "dot.png": rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
  }
  for name, array in good.items():
    PIL.Image.fromarray(array).save(os.path.join(folder, name))
  with open(os.path.join(folder, "rgb.png"), "rb") as f:
    png = f.read()
  bad = {"empty.png": b"", "truncated.png": png[:len(png) // 2], "text.png": b"not an image\n"}
  for name, data in bad.items():
    with open(os.path.join(folder, name), "wb") as f:
      f.write(data)
  with open(os.path.join(folder, "notes.txt"), "w") as f:
    f.write("not listed: folders contribute image files only")
  return {n: a.shape[:2] for n, a in good.items()}, sorted(bad)


def test_bad_inputs_are_one_line_each_and_the_rest_is_restored(model_dir, tmp_path):
  inputs, out = str(tmp_path / "in"), str(tmp_path / "out")
  good, bad = write_inputs(inputs)
  missing, unmatched = str(tmp_path / "missing.png"), str(tmp_path / "none_*.png")
  code, errors, result = restore(f"--model={model_dir}", inputs, missing, unmatched, f"--out={out}",
                                 "--stride=16", "--batch_size=8")
  assert code == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  expected = {os.path.join(inputs, "empty.png"): "empty file",
              os.path.join(inputs, "truncated.png"): "not a readable image (image file is truncated",
              os.path.join(inputs, "text.png"): "not an image",
              missing: "no such file or folder", unmatched: "no file matches"}
  summary = f"error: 5 input(s) failed (see above); 5 image(s) restored into {out}"
  assert errors[-1] == summary
  for path, reason in expected.items():
    (line,) = [e for e in errors[:-1] if e.startswith(f"error: {path}: ")]
    assert reason in line
  assert len(errors) == len(expected) + 1
  assert sorted(os.listdir(out)) == sorted(os.path.splitext(n)[0] + ".png" for n in good)
  for name, shape in good.items():
    restored = PIL.Image.open(os.path.join(out, os.path.splitext(name)[0] + ".png"))
    assert restored.mode == "RGB" and (restored.height, restored.width) == shape, name
  # The CLI's 16-bit gray output is what the Python API gives for the same file.
  api = inference.load(model_dir).restore_image(read_rgb8(os.path.join(inputs, "deep.tif")),
                                                stride=16, batch_size=8)
  np.testing.assert_array_equal(np.asarray(PIL.Image.open(os.path.join(out, "deep.png"))), api)


def corrupt(folder, case):
  """Damages a copy of an exported model; returns the path the error must name."""
  info_path = os.path.join(folder, artifact.INFO_FILE)
  if case in ("truncated params", "truncated program"):
    name = artifact.PARAMS_FILE if case == "truncated params" else artifact.PROGRAM_FILE
    path = os.path.join(folder, name)
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(data[:len(data) - 100])
    return path
  if case == "broken json":
    with open(info_path, "w") as f:
      f.write('{"format": "tavit_jax.export/1", "task":')
    return info_path
  if case == "other format":
    with open(info_path) as f:
      info = json.load(f)
    with open(info_path, "w") as f:
      json.dump(dict(info, format="tavit_jax.export/9"), f)
    return info_path
  if case == "no info":
    os.remove(info_path)
    return info_path
  raise ValueError(case)


@pytest.mark.parametrize("case, message", [
    ("truncated params", "checksum differs"), ("truncated program", "checksum differs"),
    ("broken json", "not valid JSON"), ("other format", "is not 'tavit_jax.export/1'"),
    ("no info", "missing (incomplete export?)"),
])
def test_damaged_export_names_the_file(model_dir, tmp_path, case, message):
  folder = str(tmp_path / "copy")
  shutil.copytree(model_dir, folder)
  path = corrupt(folder, case)
  with pytest.raises(TavitError) as error:
    inference.load(folder)
  assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
  assert "\n" not in str(error.value)


def test_not_a_model_names_the_path(tmp_path):
  for path, message in ((tmp_path / "nowhere", "no such file or folder"),
                        (tmp_path, "neither a training workdir nor exported or imported parameters")):
    with pytest.raises(TavitError, match=re.escape(f"{path}: {message}")):
      inference.load(str(path))
  image = tmp_path / "a.png"
  PIL.Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(image)
  with pytest.raises(TavitError, match=re.escape(f"{image}: a file; give the folder")):
    inference.load(str(image))


def test_cli_with_a_truncated_export_is_one_line_and_writes_nothing(model_dir, tmp_path):
  folder = str(tmp_path / "copy")
  shutil.copytree(model_dir, folder)
  path = corrupt(folder, "truncated program")
  image = tmp_path / "a.png"
  PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
  code, errors, result = restore(f"--model={folder}", str(image), f"--out={tmp_path / 'out'}")
  assert code == 2 and errors == [f"error: {path}: checksum differs from tavit.json (truncated or "
                                  "modified); export again"], result.stderr[-3000:]
  assert result.stderr.strip().count("\n") == 0 and not os.path.exists(tmp_path / "out")


def test_inputs_expand_folders_globs_and_repeats(tmp_path):
  inputs = str(tmp_path / "in")
  write_inputs(inputs)
  rgb = os.path.join(inputs, "rgb.png")
  found = expand([rgb, inputs, os.path.join(inputs, "*.jpg"), str(tmp_path / "gone")])
  assert found.files[0] == rgb and found.files.count(rgb) == 1
  assert os.path.join(inputs, "notes.txt") not in found.files  # Folders give image files only.
  assert len(found.files) == 8 and found.errors == [f"{tmp_path / 'gone'}: no such file or folder"]


def test_outputs_never_collide_or_overwrite_inputs(tmp_path):
  a, b = str(tmp_path / "x" / "photo.jpg"), str(tmp_path / "y" / "photo.png")
  with pytest.raises(TavitError, match=re.escape(f"{a} and {b} would both be written to")):
    output_paths([a, b], str(tmp_path / "out"))
  with pytest.raises(TavitError, match=re.escape(f"{b}: restoring it into")):
    output_paths([b], str(tmp_path / "y"))
  assert output_paths([a], str(tmp_path / "out")) == [str(tmp_path / "out" / "photo.png")]


def test_imported_parameters_folder_loads_and_exports(model_dir, tmp_path):
  from tavit_jax.serving import param_files  # pylint: disable=g-import-not-at-top

  params, _, info = artifact.read(model_dir)
  config = models.tiny_config()
  config.update(info["model"])
  param_files.save(str(tmp_path / "imported"), params, config, task="deraining", patch_size=PATCH)
  restorer = inference.load(str(tmp_path / "imported"), client="deraining")
  assert (restorer.task, restorer.client, restorer.step) == ("deraining", "deraining", None)
  exported = export.export(str(tmp_path / "imported"), str(tmp_path / "exported"), platforms=("cpu",))
  assert (exported["task"], exported["patch_size"]) == ("deraining", PATCH)
  assert artifact.read_info(str(tmp_path / "exported"))["model"] == info["model"]
