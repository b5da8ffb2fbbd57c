"""The results table of a Flower run, gathered from its clients' workdirs.

The server never holds a head or a tail, so the clients score themselves: in the single
round the first client of each task evaluates after fine-tuning (single_round_client.py).
The alternating protocol keeps the body on the server to the end, so its clients cannot
(yet) score themselves and its runs end with the seconds and bytes only.
"""

import os
from typing import Optional, Sequence

from tavit_jax import files
from tavit_jax.evaluation import report


def gather(client_dirs: Sequence[str]) -> list[dict]:
  """Every client's results.json rows, in client order (absent files: no rows)."""
  rows = []
  for directory in client_dirs:
    path = os.path.join(directory, "results.json")
    if os.path.exists(path):
      rows += files.read_json(path)
  return rows


def write(client_dirs: Sequence[str], out_dir: str) -> Optional[str]:
  """results.md and results.csv of the whole run in `out_dir`; their Markdown, or None
  when no client has scored itself."""
  rows = gather(client_dirs)
  return report.write_tables(rows, out_dir) if rows else None
