"""Arrays too large for one message, sent as row ranges and put back together.

The limit: Flower 1.42 opens every gRPC channel with `grpc.max_send_message_length` and
`grpc.max_receive_message_length` = GRPC_MAX_MESSAGE_LENGTH = 2,147,483,647 bytes
(flwr/supercore/grpc.py); arrays travel as objects of at most 5 MiB
(FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE, flwr/common/constant.py), but a message is held whole in
the SuperLink's memory and relayed whole (pickled) from the ClientApp to the client's
worker. So the single round splits what it sends into messages of at most
`flower.chunk_bytes` of array payload (256 MiB by default, well under 2 GiB): an array
along its first axis, the body as one flat float32 vector. Imports no JAX.
"""

import numpy as np

from tavit_jax.flower import wire


def row_ranges(rows: int, row_bytes: int, chunk_bytes: int) -> list[tuple[int, int]]:
  """[(start, stop)] covering `rows` rows, each range at most `chunk_bytes` (one row at least)."""
  per = max(1, int(chunk_bytes) // max(1, int(row_bytes)))
  return [(start, min(start + per, rows)) for start in range(0, rows, per)]


def array_ranges(shape: tuple, dtype, chunk_bytes: int) -> list[tuple[int, int]]:
  """The row ranges of an array of `shape` and `dtype` (split along its first axis)."""
  row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
  return row_ranges(shape[0], row_bytes, chunk_bytes)


class Assembly:
  """An array of `shape` put back from row ranges; refuses a range that is not one of
  `ranges`, a second copy of one, or rows of the wrong shape, dtype or with non-finite
  values (wire.BadArray), and then holds what it held before."""

  def __init__(self, shape: tuple, ranges: list[tuple[int, int]], dtype=np.float32):
    self.shape, self.dtype, self.ranges = tuple(shape), np.dtype(dtype), list(ranges)
    self.parts: dict[tuple[int, int], np.ndarray] = {}

  def missing(self) -> list[tuple[int, int]]:
    return [r for r in self.ranges if r not in self.parts]

  def check(self, start: int, stop: int, rows) -> np.ndarray:
    """`rows` if they may be added as rows start:stop, else wire.BadArray saying why."""
    if (start, stop) not in self.ranges:
      raise wire.BadArray(f"rows {start}:{stop} are not a chunk of this transfer")
    if (start, stop) in self.parts:
      raise wire.BadArray(f"rows {start}:{stop} were already received; the first copy is kept")
    return wire.check_array(f"rows {start}:{stop}", rows, (stop - start, *self.shape[1:]),
                            self.dtype)

  def add(self, start: int, stop: int, rows) -> None:
    self.parts[(start, stop)] = self.check(start, stop, rows)

  def complete(self) -> bool:
    return not self.missing()

  def value(self) -> np.ndarray:
    return np.concatenate([self.parts[r] for r in self.ranges], axis=0)
