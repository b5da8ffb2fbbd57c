"""Paths a user gives (CLI flags, public functions), resolved once where they enter.

orbax-checkpoint (0.12.8 and later) refuses relative paths, and a path printed in a message
or recorded in a file (an export's `source`) should name the same place wherever it is read.
So every user path is made absolute, with `~` expanded, at the boundary, and the code
behind it only ever sees absolute paths.
"""

import os
from typing import Optional


def resolve(path: Optional[str]) -> Optional[str]:
  """`path` with `~` expanded, made absolute against the current directory.

  None and "" (an optional flag left unset) come back unchanged.
  """
  if not path:
    return path
  return os.path.abspath(os.path.expanduser(os.fspath(path)))
