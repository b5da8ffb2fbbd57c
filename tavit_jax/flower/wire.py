"""What crosses the network: Flower messages of named numpy arrays plus a small config.

Every protocol message has the same content: a `ConfigRecord` 'config' (step, keys,
flags) and an `ArrayRecord` 'arrays' (f_H, f_B, their gradients, or head/tail weights
flattened to 'a/b/c' keys by `files.flatten`). Features and gradients always travel
as float32 (whatever the model computes in; bfloat16 round-trips exactly). Imports no JAX: the
ClientApp process, which Flower starts for every message, loads this module.
"""

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

# Protocol step -> Flower message type ('<category>.<action>', dispatched by the ClientApp).
MESSAGE_TYPES = {
    "hello": "query.hello",  # Who are you (client index, task, committed step)?
    "forward": "train.forward",  # docs/design.md §2.1 step 1: send f_H.
    "backward": "train.backward",  # Step 3: here is f_B, send ∂L/∂f_B.
    "update": "train.update",  # Step 5: here is ∂L/∂f_H, step the head and tail.
    "get_weights": "query.get_weights",  # FedAvg: send head and tail.
    "set_weights": "train.set_weights",  # FedAvg: take the same-task mean.
    # The single round (docs/design.md §4.4): rows of the token sets up, rows of the body down,
    # and whether fine-tuning has finished.
    "upload": "query.upload",
    "download": "train.download",
    "status": "query.status",
}
KINDS = {message_type: kind for kind, message_type in MESSAGE_TYPES.items()}


class BadArray(ValueError):
  """An array that is missing or does not have the shape and dtype the protocol needs."""


def check_array(name: str, array, shape: tuple, dtype=np.float32) -> np.ndarray:
  """`array` if it has exactly `shape` and `dtype` and finite values, else `BadArray`."""
  if array is None:
    raise BadArray(f"no '{name}' was sent")
  if array.shape != tuple(shape) or array.dtype != dtype:
    raise BadArray(f"'{name}' has shape {array.shape} and dtype {array.dtype}; expected "
                   f"{tuple(shape)} {np.dtype(dtype)}")
  if not np.all(np.isfinite(array)):
    raise BadArray(f"'{name}' has non-finite values")
  return array


def content(config: dict, arrays: dict[str, np.ndarray]) -> RecordDict:
  record = ArrayRecord({name: Array(np.asarray(a, order="C")) for name, a in arrays.items()})
  return RecordDict({"config": ConfigRecord(dict(config)), "arrays": record})


def request(kind: str, node_id: int, config: dict, arrays: dict[str, np.ndarray]) -> Message:
  return Message(content(config, arrays), dst_node_id=node_id, message_type=MESSAGE_TYPES[kind])


def parts(message: Message) -> tuple[dict, dict[str, np.ndarray]]:
  """(config, arrays) of a protocol message."""
  record = message.content
  config = dict(record.config_records["config"]) if "config" in record.config_records else {}
  arrays = record.array_records.get("arrays", ArrayRecord())
  return config, {name: array.numpy() for name, array in arrays.items()}


def serialized_bytes(message: Message) -> int:
  """Bytes of the message's serialized objects, as Flower pushes them (arrays in .npy
  form, chunk and record headers, metadata); HTTP/TLS framing not included."""
  return sum(len(obj.deflate()) for obj in get_all_nested_objects(message).values())


def array_sizes(message: Message) -> dict[str, tuple[int, int]]:
  """Per array of the message: (payload bytes, serialized bytes with its chunks)."""
  sizes = {}
  for record in message.content.array_records.values():
    for name, array in record.items():
      payload = int(np.prod(array.shape, dtype=np.int64)) * np.dtype(array.dtype).itemsize
      chunks = sum(len(chunk.deflate()) for chunk in array.children.values())
      sizes[name] = (payload, len(array.deflate()) + chunks)
  return sizes
