"""A client machine's process: the worker, the socket the ClientApp relays to, the SuperNode.

`run_client` loads or resumes the client's worker (worker.py), compiles its steps, then
starts a SuperNode whose node config names the worker's socket. If the SuperNode exits
(the SuperLink restarted and forgot it), it is started again; the worker and its state
stay. Killing this process kills its SuperNode too.
"""

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Listener
from typing import Optional

from tavit_jax.flower import launch, wire
from tavit_jax.flower.single_round_client import SingleRoundWorker
from tavit_jax.flower.worker import ClientWorker, log, ProtocolError
from tavit_jax.training import protocols

# The worker of each protocol tavit-flower deploys, by name.
WORKERS = {"alternating": ClientWorker, "single_round": SingleRoundWorker}


def listen(socket_path: str) -> Listener:
  """A Unix socket of this user for the ClientApp; its key is written next to it (mode
  0600), so only processes of this user that can read it (the ClientApp) may connect."""
  if os.path.exists(socket_path):
    os.remove(socket_path)
  key = secrets.token_bytes(32)
  fd = os.open(socket_path + ".key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
  with os.fdopen(fd, "wb") as f:
    f.write(key)
  return Listener(socket_path, family="AF_UNIX", authkey=key)


def serve(worker: ClientWorker, listener: Listener) -> None:
  """Answers relayed requests forever, one at a time."""
  while True:
    try:
      conn = listener.accept()
    except (OSError, EOFError, AuthenticationError) as e:
      log.warning("refused a connection: %s", e)
      continue
    with conn:
      request = {}
      try:
        request = conn.recv()
        reply = worker.handle(request["kind"], request["config"], request["arrays"])
        conn.send({"config": reply[0], "arrays": reply[1]})
      except (ProtocolError, wire.BadArray) as e:
        log.warning("refused %s of step %s: %s", request.get("kind"),
                    request.get("config", {}).get("step"), e)
        conn.send({"error": str(e)})
      except Exception as e:  # pylint: disable=broad-except
        log.exception("request failed")
        try:
          conn.send({"error": f"{type(e).__name__}: {e}"})
        except OSError:
          pass


def _supervise(command: list[str], log_path: str, stopping: threading.Event) -> None:
  guarded = [sys.executable, "-m", "tavit_jax.flower.launch", *command]
  while not stopping.is_set():
    with open(log_path, "ab") as log_file:
      node = subprocess.Popen(guarded, stdout=log_file, stderr=subprocess.STDOUT,
                              env=launch.environment())
    code = node.wait()
    if not stopping.is_set():
      log.warning("SuperNode exited (code %s); starting it again", code)
      stopping.wait(2.0)


def run_client(config, index: int, workdir: str, superlink: str, *,
               tls: Optional[launch.Tls] = None, auth_key: str = "",
               runtime_port: int = 0, worker_class=None) -> None:
  """Serves client `index` of `config` until killed (`worker_class`: the protocol's worker
  unless given)."""
  handler = logging.StreamHandler(sys.stdout)
  handler.setFormatter(logging.Formatter("tavit-client %(levelname)s %(message)s"))
  log.addHandler(handler)
  log.setLevel(logging.INFO)
  log.propagate = False
  os.makedirs(workdir, exist_ok=True)
  worker_class = worker_class or WORKERS[protocols.select(config.train).name]
  worker = worker_class(config, index, workdir)
  worker.warm_up()
  socket_dir = tempfile.mkdtemp(prefix="tavit-worker-")  # Mode 0700; short (AF_UNIX limit).
  socket_path = os.path.join(socket_dir, "worker.sock")
  node_config = {"worker": socket_path, "client-index": index}
  command = launch.supernode_command(superlink, runtime_port or launch.free_port(), node_config,
                                     tls=tls, auth_key=auth_key)
  stopping = threading.Event()
  # The SuperNode installs Flower apps under $FLWR_HOME: one per client.
  os.environ["FLWR_HOME"] = os.path.join(os.path.abspath(workdir), "flwr_home")
  signal.signal(signal.SIGTERM, lambda *_: (stopping.set(), sys.exit(0)))
  supervisor = threading.Thread(target=_supervise, daemon=True,
                                args=(command, os.path.join(workdir, "supernode.log"), stopping))
  log.info("client %d (%s) ready; SuperNode for %s", index, worker.client.name, superlink)
  try:
    with listen(socket_path) as listener:
      supervisor.start()
      serve(worker, listener)
  finally:
    shutil.rmtree(socket_dir, ignore_errors=True)
