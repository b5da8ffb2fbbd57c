"""The server's store of the single round's uploads: every client's token sets, kept on disk.

One .npy file per (client, chunk) in the server's workdir, written atomically before the
chunk counts as received: a server killed during self-distillation (or mid-upload) restarts
with what it was sent and asks no client for it again. A chunk that is not one the server
asked for, a second copy, or one of the wrong shape, dtype or with non-finite values is
refused (`Rejected`, one line) and leaves the store as it was. Imports no JAX.
"""

import os

import numpy as np

from tavit_jax.flower import chunks, wire
from tavit_jax.flower.fleet import Rejected


class UploadStore:
  """Per client an (rows, tokens, width) float32 upload, in row ranges of at most
  `chunk_bytes`."""

  def __init__(self, directory: str, num_clients: int, shape: tuple, chunk_bytes: int):
    self.directory, self.shape = directory, tuple(shape)
    self.ranges = chunks.array_ranges(self.shape, np.float32, chunk_bytes)
    self._uploads = [chunks.Assembly(self.shape, self.ranges) for _ in range(num_clients)]
    os.makedirs(directory, exist_ok=True)
    for k, upload in enumerate(self._uploads):
      for start, stop in self.ranges:
        path = self._path(k, start, stop)
        if os.path.exists(path):
          upload.add(start, stop, np.load(path))

  def _path(self, k: int, start: int, stop: int) -> str:
    return os.path.join(self.directory, f"client{k}_rows{start}-{stop}.npy")

  def missing(self, k: int) -> list[tuple[int, int]]:
    return self._uploads[k].missing()

  def add(self, k: int, start: int, stop: int, rows) -> None:
    """Keeps rows start:stop of client k's upload, on disk first; `Rejected` otherwise."""
    if not 0 <= k < len(self._uploads):
      raise Rejected(f"an upload from client {k}, which is not in this run")
    try:
      rows = self._uploads[k].check(start, stop, rows)
    except wire.BadArray as e:
      raise Rejected(f"upload of client {k}: {e}") from None
    path = self._path(k, start, stop)
    with open(path + ".tmp", "wb") as f:
      np.save(f, rows)
    os.replace(path + ".tmp", path)
    self._uploads[k].add(start, stop, rows)

  def complete_clients(self) -> list[int]:
    return [k for k, upload in enumerate(self._uploads) if upload.complete()]

  def tokens(self, clients: list[int]) -> np.ndarray:
    """(len(clients), rows, tokens, width): the complete uploads of `clients`."""
    return np.stack([self._uploads[k].value() for k in clients])
