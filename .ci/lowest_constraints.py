"""Prints `name==version` for every `name>=version` lower bound of pyproject.toml's
[project] dependencies (and of the extras named as arguments): a pip/uv constraints file
that installs the lowest releases we claim to support (.ci/run tests them).

  python .ci/lowest_constraints.py [EXTRA ...] > lowest.txt
"""

import os
import re
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOUND = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def lower_bounds(extras=()) -> list[str]:
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  requirements = list(project["dependencies"])
  for extra in extras:
    requirements += project["optional-dependencies"][extra]
  pins = {}
  for requirement in requirements:
    match = BOUND.match(requirement)
    if match is None:
      sys.exit(f"{requirement!r} has no `>=` lower bound to pin")
    pins[match.group(1).lower()] = match.group(2)
  return [f"{name}=={version}" for name, version in pins.items()]


if __name__ == "__main__":
  print("\n".join(lower_bounds(sys.argv[1:])))
