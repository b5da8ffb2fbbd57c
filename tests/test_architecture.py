"""The layout of ARCHITECTURE.md, kept true: which part of tavit_jax may import which, and no
import cycles between modules."""

import ast
import os
import tomllib

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tavit_jax")
BASE = {"errors", "files", "color", "config_files"}
# Part (a top-level module or package of tavit_jax) -> the other parts it may import.
ALLOWED = {
    "errors": set(),
    "files": {"errors"},
    "color": set(),
    "config_files": {"errors", "files"},
    "roster": set(),
    "fedavg": {"roster"},
    "models": {"errors"},
    "schedule": {"errors"},
    "protocol": {"errors", "models"},
    "data": BASE | {"roster"},
    "evaluation": BASE | {"models", "data", "roster", "schedule", "protocol"},
    "training": BASE | {"models", "data", "roster", "fedavg", "schedule", "protocol",
                        "evaluation"},
    "serving": BASE | {"models", "data", "roster", "evaluation"},
    "flower": BASE | {"models", "data", "roster", "fedavg", "schedule", "protocol", "evaluation",
                      "training"},
    "attacks": BASE | {"models", "data", "roster", "protocol", "evaluation", "training",
                       "serving"},
    "cli": BASE | {"models", "data", "roster", "schedule", "protocol", "evaluation", "training",
                   "serving", "flower"},
}


def modules() -> dict[str, str]:
  """{dotted module name: file} of every module of the package."""
  found = {}
  for folder, _, names in os.walk(PACKAGE):
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        parts = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return found


def imports(path: str, known: set[str], top_level_only: bool = False) -> set[str]:
  """The tavit_jax modules `path` imports (a name imported from a package counts as its
  submodule when there is one); function-level imports too unless `top_level_only`."""
  with open(path) as f:
    tree = ast.parse(f.read())
  nodes = tree.body if top_level_only else ast.walk(tree)
  found = set()
  for node in nodes:
    if isinstance(node, ast.Import):
      found |= {alias.name for alias in node.names if alias.name.startswith("tavit_jax")}
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tavit_jax"):
      for alias in node.names:
        child = f"{node.module}.{alias.name}"
        found.add(child if child in known else node.module)
  return found


def part(module: str) -> str:
  return module.split(".")[1] if "." in module else ""


def test_every_part_is_listed():
  assert {part(m) for m in modules()} - {""} == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_follow_the_layers(module):
  known = set(modules())
  mine = part(module)
  if not mine:
    return
  wrong = sorted(m for m in imports(modules()[module], known)
                 if part(m) not in ALLOWED[mine] | {mine, ""})
  assert not wrong, f"{module} ({mine}) may not import {wrong}; see ARCHITECTURE.md"


def test_no_import_cycles():
  found = modules()
  graph = {m: imports(path, set(found), top_level_only=True) & set(found) for m, path in found.items()}
  state: dict[str, int] = {}  # 1: on the current path, 2: done.

  def visit(module, path):
    state[module] = 1
    for target in sorted(graph[module]):
      if state.get(target) == 1:
        raise AssertionError("import cycle: " + " -> ".join(path[path.index(target):] + [target]))
      if target not in state:
        visit(target, path + [target])
    state[module] = 2

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])


def test_pyproject_lists_every_package():
  """pyproject lists the packages (configs/ maps into tavit_jax): a new one must be added."""
  with open(os.path.join(os.path.dirname(PACKAGE), "pyproject.toml"), "rb") as f:
    listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
  on_disk = {name for name, path in modules().items() if path.endswith("__init__.py")}
  assert listed == on_disk | {"tavit_jax.configs"}
