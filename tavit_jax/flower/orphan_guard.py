"""`python -m tavit_jax.flower.orphan_guard CMD...`: exec CMD so that it is killed when
the process that started it dies (Linux PR_SET_PDEATHSIG; elsewhere plain exec).

The client process starts its SuperNode through this: a killed client must not leave a
SuperNode behind that answers for a worker that is gone. (Setting it from the JAX process
itself would need a `preexec_fn`, unsafe after fork in a multithreaded process.)
"""

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main() -> None:
  parent = os.getppid()
  try:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
  except (OSError, AttributeError):
    pass
  if os.getppid() != parent:  # The parent died before the guard was set.
    sys.exit(1)
  os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
  main()
