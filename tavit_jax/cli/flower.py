"""`tavit-flower`: TAViT over Flower's Deployment Engine.

One machine, everything on loopback (SuperLink, one SuperNode per client, the run):

  tavit-flower local --config=configs/flower_tiny.py --workdir=/tmp/tavit_flower

Across machines (see the README for TLS certificates and SuperNode keys):

  server$  tavit-flower superlink --host=0.0.0.0 --port=9093 --tls_dir=certs --node_auth
  client$  tavit-flower client --config=configs/flower_tiny.py --client_index=0
             --workdir=client0 --superlink=server:9093 --ca_cert=ca.crt --auth_key=keys/client0
  you$     tavit-flower run --config=configs/flower_tiny.py --workdir=server_state
             --superlink=server:9093 --ca_cert=ca.crt

`--config.train.cycles=1` overrides a config field, as in `tavit-train`; server and clients
must agree on the shared fields (the server refuses a client whose config differs).

Secure by default: the SuperLink listens on loopback unless --host says otherwise, and no
command listens on or connects to another machine's address without TLS unless --insecure
is given; each says at startup whether its link is encrypted and whether nodes are
authenticated.
"""

import functools
import os
import subprocess
import time

from absl import flags
from ml_collections import config_flags

from tavit_jax import files
from tavit_jax.cli.common import run_app, subcommand
from tavit_jax.flower import launch, settings

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config (configs/*.py)",
                                          lock_config=True)
flags.DEFINE_string("workdir", None, "this side's folder: checkpoints and logs")
flags.DEFINE_string("host", "127.0.0.1", "superlink: address to listen on; loopback (this "
                    "machine only) by default, 0.0.0.0 for every interface (needs --tls_dir or "
                    "--insecure)")
flags.DEFINE_integer("port", 9093, "superlink: port of the SuperLink's Fleet API")
flags.DEFINE_string("tls_dir", None, "superlink: folder with ca.crt, server.pem, server.key")
flags.DEFINE_bool("node_auth", False, "superlink: only registered SuperNodes may join (needs "
                  "--tls_dir)")
flags.DEFINE_string("database", None, "superlink: state file (default: in memory; registered "
                    "SuperNodes are then forgotten on restart)")
flags.DEFINE_integer("client_index", None, "client: which entry of config.clients")
flags.DEFINE_string("superlink", None, "client, run: host:port of the SuperLink")
flags.DEFINE_string("ca_cert", None, "client, run: CA certificate of the SuperLink's TLS")
flags.DEFINE_bool("insecure", False, "superlink, client, run: no TLS on a non-loopback "
                  "address: nothing encrypted, nodes not authenticated; a trusted network only")
flags.DEFINE_string("auth_key", "", "client: this SuperNode's private key (node auth; needs "
                    "--ca_cert)")
flags.DEFINE_integer("runtime_port", 0, "client: the SuperNode's local API port")
FLAGS = flags.FLAGS

# Per command: (required flags, optional flags).
COMMANDS = {
    "superlink": ((), ("host", "port", "tls_dir", "node_auth", "insecure", "database")),
    "client": (("config", "workdir", "client_index", "superlink"),
               ("ca_cert", "insecure", "auth_key", "runtime_port")),
    "run": (("config", "workdir", "superlink"), ("ca_cert", "insecure")),
    "local": (("config", "workdir"), ()),
}


def _path(name: str):
  return files.resolve(FLAGS[name].value) if FLAGS[name].value else None


def _tls(server: bool = False):
  if server:
    if not FLAGS.tls_dir:
      return None
    path = lambda name: os.path.join(_path("tls_dir"), name)
    return launch.Tls(path("ca.crt"), path("server.pem"), path("server.key"))
  return launch.Tls(_path("ca_cert")) if FLAGS.ca_cert else None


def _config():
  """(config, its file as 'path[:arg]', the --config.* overrides as a flat dict), checked
  whole before anything is written or started."""
  from tavit_jax.training.config_check import validate  # pylint: disable=g-import-not-at-top
  spec = config_flags.get_config_filename(FLAGS["config"])
  return (settings.check(validate(_CONFIG.value)), spec,
          dict(config_flags.get_override_values(FLAGS["config"])))


def _say(command: str, lines: list[str]) -> None:
  """The startup log lines saying what protects the link, before any Flower output."""
  for line in lines:
    print(f"[tavit-flower {command}] {line}", flush=True)


def superlink() -> int:
  """Runs the SuperLink: the server that SuperNodes (clients) and runs connect to."""
  tls = _tls(server=True)
  lines = launch.superlink_security(FLAGS.host, FLAGS.port, tls, FLAGS.node_auth, FLAGS.insecure)
  command = launch.superlink_command(FLAGS.port, tls, FLAGS.node_auth, FLAGS.host, FLAGS.insecure)
  _say("superlink", lines)
  if FLAGS.database:
    command += ["--database", _path("database")]
  return subprocess.call(command, env=launch.environment())


def client(worker_class=None) -> None:
  """Serves config.clients[--client_index] as a SuperNode until killed."""
  lines = launch.client_security(FLAGS.superlink, _tls(), _path("auth_key") or "", FLAGS.insecure)
  # pylint: disable-next=g-import-not-at-top
  from tavit_jax.flower.client_process import run_client
  config, _, _ = _config()
  _say("client", lines)
  run_client(config, FLAGS.client_index, _path("workdir"), FLAGS.superlink, tls=_tls(),
             auth_key=_path("auth_key") or "", runtime_port=FLAGS.runtime_port,
             worker_class=worker_class)


def run() -> int:
  """Submits the run to the SuperLink and streams its log until it ends."""
  lines = launch.run_security(FLAGS.superlink, _tls(), FLAGS.insecure)
  _, spec, overrides = _config()
  _say("run", lines)
  workdir = _path("workdir")
  flower = os.path.join(workdir, "flower")
  app_dir = launch.write_app(os.path.join(flower, "app"))
  flwr_home = launch.write_flower_home(os.path.join(flower, "home"), FLAGS.superlink, _tls())
  run_config = launch.write_run_config(os.path.join(flower, "run_config.toml"), spec,
                                       overrides, workdir)
  return subprocess.call(launch.run_command(app_dir, run_config),
                         env=launch.environment({"FLWR_HOME": flwr_home}))


def _prepare_data(config) -> None:
  """Builds missing default datasets once, before clients sharing this machine race to."""
  from tavit_jax import roster  # pylint: disable=g-import-not-at-top
  from tavit_jax.data import datasets, tasks  # pylint: disable=g-import-not-at-top
  for task in roster.first_of_each_task(config.clients):
    datasets.open_split(tasks.task_data(task, config.data.suite).train, config.data.data_dir)


def local() -> int:
  """SuperLink + one client process per client + the run, all on this machine."""
  # pylint: disable=g-import-not-at-top
  from tavit_jax.flower import client_results
  from tavit_jax.flower.records import summarize
  config, spec, overrides = _config()
  _prepare_data(config)
  with launch.LocalDeployment(spec, overrides, _path("workdir"), len(config.clients)) as deployment:
    _say("local", launch.superlink_security("127.0.0.1", deployment.port))
    deployment.start()
    started = time.time()
    print(f"SuperLink on {deployment.address}; logs in {os.path.dirname(deployment.log('run'))}")
    code = deployment.start_run().wait()
    print(f"run ended with code {code} after {time.time() - started:.1f} s")
    print(summarize(deployment.server_dir))
    clients = [deployment.client_dir(k) for k in range(len(config.clients))]
    table = client_results.write(clients, deployment.workdir) if code == 0 else None
    if table:
      print("\n" + table + f"\n(results.md and results.csv in {deployment.workdir})")
    elif code == 0:
      print("no results table: over Flower only the single round's clients score themselves "
            "(the alternating protocol's body stays on the server)")
  return code


def _main(argv, worker_class=None) -> int:
  command = subcommand("tavit-flower", argv, COMMANDS)
  if command == "client":
    return client(worker_class) or 0
  return {"superlink": superlink, "run": run, "local": local}[command]() or 0


def main(worker_class=None) -> None:
  """The console script; tests pass another `worker_class` for a misbehaving client."""
  run_app(functools.partial(_main, worker_class=worker_class))


if __name__ == "__main__":
  main()
