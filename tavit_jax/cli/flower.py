"""`tavit-flower`: TAViT over Flower's Deployment Engine.

One machine, everything on loopback (SuperLink, one SuperNode per client, the run):

  tavit-flower local --config=configs/flower_tiny.py --workdir=/tmp/tavit_flower

Across machines (see the README for TLS certificates and SuperNode keys):

  server$  tavit-flower superlink --port=9093 --tls-dir=certs --node-auth
  client$  tavit-flower client --config=configs/flower_tiny.py --client-index=0
             --workdir=client0 --superlink=server:9093 --ca-cert=ca.crt --auth-key=keys/client0
  you$     tavit-flower run --config=configs/flower_tiny.py --workdir=server_state
             --superlink=server:9093 --ca-cert=ca.crt

`--set train.cycles=1` overrides a config field (repeatable); server and clients must
agree on the shared fields (the server refuses a client whose config differs).
"""

import argparse
import json
import os
import subprocess
import sys
import time

from tavit_jax import files
from tavit_jax.cli.common import exit_on_user_error
from tavit_jax.errors import TavitError
from tavit_jax.flower import launch, settings


def _overrides(pairs: list[str]) -> dict:
  overrides = {}
  for pair in pairs or []:
    key, sep, value = pair.partition("=")
    if not sep:
      raise TavitError(f"--set wants key=value, not {pair!r}")
    try:
      overrides[key] = json.loads(value)
    except json.JSONDecodeError:
      overrides[key] = value
  return overrides


def _tls(args, server: bool = False):
  if server:
    if not args.tls_dir:
      return None
    path = lambda name: os.path.join(args.tls_dir, name)
    return launch.Tls(path("ca.crt"), path("server.pem"), path("server.key"))
  return launch.Tls(args.ca_cert) if args.ca_cert else None


def superlink(args) -> int:
  command = launch.superlink_command(args.port, _tls(args, server=True), args.node_auth, args.host)
  if args.database:
    command += ["--database", args.database]
  return subprocess.call(command, env=launch.environment())


def client(args, **kwargs) -> None:
  from tavit_jax.flower.worker import run_client  # pylint: disable=g-import-not-at-top
  config = settings.load_config(args.config, _overrides(args.set))
  run_client(config, args.client_index, args.workdir, args.superlink, tls=_tls(args),
             auth_key=args.auth_key, runtime_port=args.runtime_port, **kwargs)


def run(args, superlink_address: str = "") -> int:
  """Submits the run to the SuperLink and streams its log until it ends."""
  overrides = _overrides(args.set)
  settings.load_config(args.config, overrides)  # Fail here, not in the ServerApp.
  flower = os.path.join(args.workdir, "flower")
  app_dir = launch.write_app(os.path.join(flower, "app"))
  flwr_home = launch.write_flower_home(os.path.join(flower, "home"),
                                       superlink_address or args.superlink, _tls(args))
  run_config = launch.write_run_config(os.path.join(flower, "run_config.toml"), args.config,
                                       overrides, args.workdir)
  return subprocess.call(launch.run_command(app_dir, run_config),
                         env=launch.environment({"FLWR_HOME": flwr_home}))


def _prepare_data(config) -> None:
  """Builds missing default datasets once, before clients sharing this machine race to."""
  from tavit_jax import roster  # pylint: disable=g-import-not-at-top
  from tavit_jax.data import datasets, tasks  # pylint: disable=g-import-not-at-top
  for task in roster.first_of_each_task(config.clients):
    datasets.open_split(tasks.task_data(task, config.data.suite).train, config.data.data_dir)


def local(args) -> int:
  """SuperLink + one client process per client + the run, all on this machine."""
  from tavit_jax.flower.records import summarize  # pylint: disable=g-import-not-at-top
  overrides = _overrides(args.set)
  config = settings.load_config(args.config, overrides)
  _prepare_data(config)
  with launch.LocalDeployment(args.config, overrides, args.workdir, len(config.clients)) as deployment:
    deployment.start()
    started = time.time()
    print(f"SuperLink on {deployment.address}; logs in {os.path.dirname(deployment.log('run'))}")
    code = deployment.start_run().wait()
    print(f"run ended with code {code} after {time.time() - started:.1f} s")
    print(summarize(deployment.server_dir))
  return code


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="tavit-flower", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="command", required=True)

  def with_config(q):
    q.add_argument("--config", required=True, help="experiment config (configs/*.py[:arg])")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    q.add_argument("--workdir", required=True, type=files.resolve)

  q = sub.add_parser("superlink", help="start a SuperLink")
  q.add_argument("--host", default="0.0.0.0", help="address to listen on (all by default)")
  q.add_argument("--port", type=int, default=9093)
  q.add_argument("--tls-dir", type=files.resolve, help="folder with ca.crt, server.pem, server.key (else insecure)")
  q.add_argument("--node-auth", action="store_true", help="only registered SuperNodes may join")
  q.add_argument("--database", type=files.resolve, help="SuperLink state file (default: in memory; registered "
                 "SuperNodes are then forgotten on restart)")
  q.set_defaults(main=superlink)
  q = sub.add_parser("client", help="start one client (worker + SuperNode)")
  with_config(q)
  q.add_argument("--client-index", type=int, required=True, help="which entry of config.clients")
  q.add_argument("--superlink", required=True, help="host:port of the SuperLink")
  q.add_argument("--ca-cert", type=files.resolve, help="CA certificate of the SuperLink's TLS (else insecure)")
  q.add_argument("--auth-key", default="", type=files.resolve, help="this SuperNode's private key (node auth)")
  q.add_argument("--runtime-port", type=int, default=0, help="SuperNode's local API port")
  q.set_defaults(main=client)
  q = sub.add_parser("run", help="start the training run on a SuperLink")
  with_config(q)
  q.add_argument("--superlink", required=True, help="host:port of the SuperLink")
  q.add_argument("--ca-cert", type=files.resolve, help="CA certificate of the SuperLink's TLS (else insecure)")
  q.set_defaults(main=run)
  q = sub.add_parser("local", help="SuperLink, clients and run on this machine (loopback)")
  with_config(q)
  q.set_defaults(main=local, ca_cert=None)
  return p


@exit_on_user_error
def _main(argv=None) -> int:
  args = parser().parse_args(argv)
  return args.main(args) or 0


def main() -> None:
  sys.exit(_main())


if __name__ == "__main__":
  main()
