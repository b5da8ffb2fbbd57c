"""`--help` and `-h` of every console script: what it does, its commands and its own flags
with their help, exit status 0, none of absl's or JAX's flags (`--helpfull` keeps those).

Each command runs in a subprocess (the scripts of [project.scripts], by module); they start
in parallel and take about a second each.
"""

import ast
import concurrent.futures
import functools
import os
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
  SCRIPTS = tomllib.load(f)["project"]["scripts"]  # name -> "module:function"

FOREIGN = ("--flagfile", "--verbosity", "--logtostderr", "--undefok", "jax_")


def _source(module: str) -> ast.Module:
  with open(os.path.join(ROOT, *module.split(".")) + ".py") as f:
    return ast.parse(f.read())


def _has_main_block(tree: ast.Module) -> bool:
  return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
             for node in tree.body)


def _literal_flags(tree: ast.Module) -> dict[str, str]:
  """name -> help of the module's own DEFINE_*("name", default, "help") with a literal help."""
  found = {}
  for node in ast.walk(tree):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr.startswith("DEFINE_") and len(node.args) >= 3
        and all(isinstance(a, ast.Constant) and isinstance(a.value, str)
                for a in (node.args[0], node.args[-1]))):
      found[node.args[0].value] = node.args[-1].value
  return found


def _commands(tree: ast.Module) -> list[str]:
  for node in tree.body:
    if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMMANDS"
                                            for t in node.targets):
      return list(ast.literal_eval(node.value))
  return []


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
  module, function = SCRIPTS[script].split(":")
  if _has_main_block(_source(module)):
    command = [sys.executable, "-m", module]
  else:
    command = [sys.executable, "-c", f"import sys; from {module} import {function} as f; "
               f"sys.argv[0] = {script!r}; f()"]
  return subprocess.run(command + list(args), cwd=ROOT, capture_output=True, text=True,
                        timeout=120, check=False)


@functools.cache
def _helps() -> dict:
  """(script, word) -> the finished process, for every script with --help and -h."""
  runs = [(script, word) for script in SCRIPTS for word in ("--help", "-h")]
  with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    return dict(zip(runs, pool.map(lambda run: _run(*run), runs)))


def _flat(text: str) -> str:
  return " ".join(text.split())


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_says_what_the_command_does_and_its_flags(script):
  tree = _source(SCRIPTS[script].split(":")[0])
  own = _literal_flags(tree)
  assert own, f"{script} defines no flag with a literal help text"
  for word in ("--help", "-h"):
    result = _helps()[script, word]
    assert result.returncode == 0, result.stderr
    out = _flat(result.stdout)
    assert _flat(ast.get_docstring(tree).splitlines()[0]) in out
    for name, help_text in own.items():
      assert f"--{name}: " in out or f"--[no]{name}: " in out, (name, result.stdout)
      assert _flat(help_text) in out, (name, result.stdout)
    for foreign in FOREIGN:
      assert foreign not in result.stdout, (foreign, result.stdout)
    for command in _commands(tree):
      assert f" {command} " in result.stdout, (command, result.stdout)
    if "config" in own:
      assert "--config.<key>=value overrides any field" in out


def test_help_of_one_flower_command_lists_its_flags_only():
  result = _run("tavit-flower", "local", "--help")
  assert result.returncode == 0, result.stderr
  assert "SuperLink + one client process per client" in result.stdout
  assert "--config:" in result.stdout and "--workdir:" in result.stdout
  assert "--port:" not in result.stdout and "--client_index:" not in result.stdout


def test_helpfull_is_still_absl_s():
  result = _run("tavit-train", "--helpfull")
  assert "--verbosity" in result.stdout and "--workdir" in result.stdout
