"""The ClientApp: relays each protocol message to this client's worker and returns its reply.

Flower runs the ClientApp in a new process per message, so the state cannot live here;
it lives in the worker (`tavit_jax.flower.worker`), reached over the Unix socket named by
the SuperNode's node config (`worker="/path/worker.sock"`). A refusal by the worker
becomes a Flower error reply whose reason the server logs. No JAX here: it would cost
seconds per message.
"""

from multiprocessing.connection import Client

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from tavit_jax.flower import wire

app = ClientApp()


class WorkerRefused(Exception):
  """The worker refused the request; the message says why."""


def relay(message: Message, context: Context) -> Message:
  kind = wire.KINDS[message.metadata.message_type]
  config, arrays = wire.parts(message)
  socket_path = str(context.node_config["worker"])
  with open(socket_path + ".key", "rb") as f:
    key = f.read()
  with Client(socket_path, family="AF_UNIX", authkey=key) as conn:
    conn.send({"kind": kind, "config": config, "arrays": arrays})
    reply = conn.recv()
  if "error" in reply:
    raise WorkerRefused(reply["error"])
  return Message(wire.content(reply["config"], reply["arrays"]), reply_to=message)


for _message_type in wire.MESSAGE_TYPES.values():
  _category, _action = _message_type.split(".")
  getattr(app, _category)(_action)(relay)
