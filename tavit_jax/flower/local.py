"""A whole deployment on this machine over loopback: SuperLink, one client process per
client (worker + SuperNode), and runs submitted with `flwr run`. Every part is a real,
separate process that can be killed and restarted (the tests do)."""

import json
import os
import subprocess
import sys
from typing import Optional

from tavit_jax.flower import launch


class LocalDeployment:
  """Layout under `workdir`: server/ (the ServerApp's workdir), client<k>/, logs/."""

  def __init__(self, config: str, overrides: dict, workdir: str, num_clients: int,
               env: Optional[dict] = None):
    """`env`: extra environment of every process (e.g. JAX_COMPILATION_CACHE_DIR)."""
    self.config, self.overrides, self.env = config, dict(overrides), dict(env or {})
    self.workdir = os.path.abspath(workdir)
    self.num_clients = num_clients
    self.port = launch.free_port()
    self.superlink: Optional[subprocess.Popen] = None
    self.clients: dict[int, subprocess.Popen] = {}
    self.run_process: Optional[subprocess.Popen] = None
    self.server_dir = os.path.join(self.workdir, "server")
    flower = os.path.join(self.server_dir, "flower")
    self.app_dir = launch.write_app(os.path.join(flower, "app"))
    self.flwr_home = launch.write_flower_home(os.path.join(flower, "home"), self.address)
    self.run_config = launch.write_run_config(os.path.join(flower, "run_config.toml"), config,
                                              self.overrides, self.server_dir)

  @property
  def address(self) -> str:
    return f"127.0.0.1:{self.port}"

  def log(self, name: str) -> str:
    return os.path.join(self.workdir, "logs", f"{name}.log")

  def client_dir(self, k: int) -> str:
    return os.path.join(self.workdir, f"client{k}")

  def start_superlink(self) -> None:
    home = os.path.join(self.workdir, "superlink_home")
    self.superlink = launch.start(launch.superlink_command(self.port), self.log("superlink"),
                                  {**self.env, "FLWR_HOME": home})
    launch.wait_for_port(self.port)

  def stop_superlink(self, kill: bool = False) -> None:
    if self.superlink is not None:
      launch.stop(self.superlink, kill=kill)

  def client_command(self, k: int, program: tuple = ("-m", "tavit_jax.cli.flower")) -> list[str]:
    """`tavit-flower client` for client k; `program` may name another script with its CLI."""
    sets = [arg for key, value in self.overrides.items()
            for arg in ("--set", f"{key}={json.dumps(value)}")]
    return [sys.executable, *program, "client", "--config", self.config, "--client-index",
            str(k), "--workdir", self.client_dir(k), "--superlink", self.address] + sets

  def start_client(self, k: int, command: Optional[list[str]] = None) -> None:
    self.clients[k] = launch.start(command or self.client_command(k), self.log(f"client{k}"),
                                   self.env)

  def stop_client(self, k: int, kill: bool = False) -> None:
    launch.stop(self.clients.pop(k), kill=kill)

  def start_run(self) -> subprocess.Popen:
    """`flwr run` of the ServerApp; its streamed log goes to logs/run.log."""
    self.run_process = launch.start(launch.run_command(self.app_dir, self.run_config),
                                    self.log("run"), {**self.env, "FLWR_HOME": self.flwr_home})
    return self.run_process

  def wait_run(self, timeout: float) -> int:
    return self.run_process.wait(timeout=timeout)

  def start(self) -> "LocalDeployment":
    self.start_superlink()
    for k in range(self.num_clients):
      self.start_client(k)
    return self

  def close(self) -> None:
    for process in [self.run_process, *self.clients.values(), self.superlink]:
      if process is not None:
        launch.stop(process)
    self.clients.clear()

  def __enter__(self) -> "LocalDeployment":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
