"""The README's walkthrough, typed as a user types it.

The commands come from the README's own fenced blocks and run one after another in a fresh
current directory with the README's relative paths (workdir, exported/deraining, restored,
...), through the installed console scripts. Only what the tiny size needs is swapped (see
`TINY`), so editing a README command into one that no longer works fails this test. The
venv-and-install half of the README's first command is what `.ci/run` itself does.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

import fake_trees
from tavit_jax.data import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md")) as f:
  README = f.read()
# README (default size) -> tiny size: config, its dataset, and a stride within its 32-px patches.
TINY = (("configs/default.py", "configs/tiny.py"), ("tavit_default:", "tavit_default/tiny:"),
        ("--stride=64", "--stride=32"))

pytestmark = pytest.mark.slow


def fenced_blocks(text: str) -> list[tuple[str, str]]:
  """(language, body) of every fenced block."""
  return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def shell_commands(text: str) -> list[str]:
  """Every command of the shell blocks: continuations joined, comments dropped, `&&` split,
  and the README's `.venv/bin/` prefix removed (the test runs in the installed venv)."""
  commands = []
  for language, body in fenced_blocks(text):
    if language not in ("bash", ""):
      continue
    for line in body.replace("\\\n", " ").splitlines():
      line = line.split("  #")[0].strip()
      commands += [part.strip().replace(".venv/bin/", "") for part in line.split("&&") if part.strip()]
  return commands


def readme_command(prefix: str) -> str:
  """The README's first command starting with `prefix`, at the tiny size."""
  found = [c for c in shell_commands(README) if c.startswith(prefix)]
  assert found, f"the README has no command starting {prefix!r}"
  command = found[0]
  for default, tiny in TINY:
    command = command.replace(default, tiny)
  return command


def readme_python(marker: str, text: str) -> str:
  (block,) = [body for language, body in fenced_blocks(text) if language == "python" and marker in body]
  return block


def comment_of(prefix: str) -> str:
  """The `# ...` comment after a README command (e.g. the listing `ls` is said to print)."""
  (line,) = [l for l in README.splitlines() if l.startswith(prefix)]
  return line.split("#", 1)[1].strip()


def write_image(path: str, size=(45, 70)) -> tuple[int, int]:
  rng = np.random.default_rng(len(path))
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  PIL.Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
  return size


def make_inputs(command: str, cwd) -> dict[str, tuple[int, int]]:
  """Creates the images a tavit-restore command names: a folder gets two images and one
  unreadable file, a glob two matches, a file itself. Returns {expected output: (H, W)}."""
  expected = {}
  for argument in shlex.split(command)[1:]:
    if argument.startswith("--"):
      continue
    path = os.path.join(cwd, argument)
    if argument.endswith("/"):
      for name in ("a.png", "b.jpg"):
        expected[os.path.splitext(name)[0]] = write_image(os.path.join(path, name))
      with open(os.path.join(path, "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n truncated")
    elif "*" in argument:
      for name in ("c", "d"):
        expected[name] = write_image(path.replace("*", name))
    else:
      expected[os.path.splitext(os.path.basename(argument))[0]] = write_image(path)
  return expected


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
  """A fresh folder with the repository's configs/ and a data dir holding the tiny default
  dataset and a tiny Rain13K (built from the real archive layout)."""
  cwd = tmp_path_factory.mktemp("user")
  shutil.copytree(os.path.join(ROOT, "configs"), cwd / "configs")
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  datasets.prepare("tavit_default/tiny", data_dir)
  rain_download = str(tmp_path_factory.mktemp("rain13k_download"))
  fake_trees.rain_tree(rain_download)
  datasets.prepare("rain13k", data_dir, manual_dir=rain_download)
  env = dict(os.environ, TAVIT_DATA_DIR=data_dir,
             PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])

  def run(command: str, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == expect, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result

  return cwd, run


def test_readme_walkthrough(walk):
  cwd, run = walk
  train = readme_command("tavit-train --config=configs/default.py --workdir=workdir")
  out = run(train).stdout
  assert "| denoising | sigma30 |" in out and (cwd / "workdir" / "results.md").is_file()
  assert "Resuming" in run(train).stdout  # The same command again: nothing left to train.

  run(readme_command("tavit-export --workdir=workdir --client=deraining"))
  listing = run("ls exported/deraining").stdout.split()
  assert listing == comment_of("ls exported/deraining").split()

  # Files, a folder, a glob and one unreadable file: that one is named, the others written.
  restore = readme_command("tavit-restore --model=exported/deraining")
  expected = make_inputs(restore, cwd)
  result = run(restore, expect=2)
  assert re.findall(r"error: [^\r\n]*", result.stderr)[0].startswith("error: rainy/broken.png:")
  restore_workdir = readme_command("tavit-restore --model=workdir")
  expected.update(make_inputs(restore_workdir, cwd))
  run(restore_workdir)
  for name, size in expected.items():
    with PIL.Image.open(cwd / "restored" / f"{name}.png") as image:
      assert image.size[::-1] == size

  run(readme_command("tavit-eval --model=exported/deraining --dataset=rain13k:test_rain100h"))
  assert {"results.md", "results.csv", "per_image.csv"} <= set(os.listdir(cwd / "eval" / "rain100h"))
  assert "| denoising | sigma30 |" in run(readme_command("tavit-eval --model=workdir")).stdout

  # The README's Python snippet, with the inputs it names.
  snippet = readme_python("inference.load(", README)
  (cwd / "snippet.py").write_text(
      "import numpy as np\nrainy_uint8 = np.full((45, 70, 3), 128, np.uint8)\n"
      "patches = np.zeros((3, 32, 32, 3), np.float32)\n" + snippet +
      "assert restored.shape == (45, 70, 3) and patches_out.shape == (3, 32, 32, 3)\n")
  run(f"{sys.executable} snippet.py")

  # The exported folder's own README snippet, run inside that folder.
  folder = cwd / "exported" / "deraining"
  loader = readme_python("jax.export.deserialize", (folder / "README.md").read_text())
  (folder / "loader.py").write_text(
      loader.replace("restored = restore(params, patches)",
                     "patches = np.zeros((2, info['patch_size'], info['patch_size'], 3), np.float32)\n"
                     "restored = restore(params, patches)\nassert restored.shape == patches.shape"))
  subprocess.run([sys.executable, "loader.py"], cwd=folder, check=True, timeout=300)
