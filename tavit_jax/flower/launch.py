"""Starting a deployment: SuperLink, SuperNodes, the Flower app, a run, and all of them on
one machine over loopback (`LocalDeployment`).

Shared by the `tavit-flower` CLI and the tests. Every process starts in its own session,
so stopping one stops its children (SuperExec, ServerApp/ClientApp processes) too.

Secure by default, like Flower's own `flower-superlink`: the SuperLink listens on loopback
unless told otherwise, and nothing listens on or connects to another machine's address
without TLS unless `--insecure` says so (`superlink_security`, `client_security`,
`run_security` check it and return the startup log lines that say what protects the link).
The client's SuperNode serves its Runtime API on 127.0.0.1 only (Flower's default).

`python -m tavit_jax.flower.launch CMD...` execs CMD so that it is killed when the process
that started it dies (Linux PR_SET_PDEATHSIG; elsewhere plain exec). The client process
starts its SuperNode through this: a killed client must not leave a SuperNode behind that
answers for a worker that is gone. (Setting it from the JAX process itself would need a
`preexec_fn`, unsafe after fork in a multithreaded process.)
"""

import ctypes
import dataclasses
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

import tomli_w

from tavit_jax import config_files
from tavit_jax.errors import TavitError

# Flower's SuperExec checks for new work once a second by default; a round trip of the
# protocol needs it several times.
FLOWER_ENV = {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.05"}
CONNECTION = "tavit"  # Name of the SuperLink connection in the Flower configuration.

APP_TOML = {
    "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
    "project": {"name": "tavit-flower", "version": "0.1.0", "license": "Apache-2.0",
                "description": "TAViT split learning over Flower (tavit_jax.flower)",
                "dependencies": ["tavit_jax[flower]"]},
    "tool": {"flwr": {"app": {
        "publisher": "tavit-jax",
        "components": {"serverapp": "tavit_jax.flower.server_app:app",
                       "clientapp": "tavit_jax.flower.client_app:app"},
        "config": {"config": "configs/flower_tiny.py", "overrides": "", "workdir": "flower_server"},
    }}},
}


@dataclasses.dataclass(frozen=True)
class Tls:
  """Certificates of a TLS deployment (see the README: 'Over Flower, across machines')."""

  ca_cert: str  # CA that signed the SuperLink's certificate; clients and `flwr` trust it.
  server_cert: str = ""  # The SuperLink's certificate and key (only on its machine).
  server_key: str = ""


def host_of(address: str) -> str:
  """The host of 'host:port', '[v6]:port', or of a bare host."""
  address = address.strip()
  if address.startswith("["):
    return address[1:].partition("]")[0]
  return address.rpartition(":")[0] if address.count(":") == 1 else address


def is_loopback(host: str) -> bool:
  """Only this machine can reach `host`: 'localhost', 127.0.0.0/8 or ::1. Names are not
  resolved (what a name points to can change); 0.0.0.0 and :: are every interface."""
  host = host.strip().rstrip(".").lower()
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def _check_plaintext(doing: str, address: str, tls: Optional[Tls], insecure: bool,
                     tls_flag: str) -> None:
  """Refuses a link to or from another machine without TLS unless `insecure`."""
  if tls is not None and insecure:
    raise TavitError(f"give {tls_flag} (TLS) or --insecure (no TLS), not both")
  if tls is None and not insecure and not is_loopback(host_of(address)):
    raise TavitError(
        f"refusing to {doing} {address} without TLS: give {tls_flag} (see the README), or "
        "--insecure to send everything unencrypted (only on a network you trust)")


def _link_line(tls: Optional[Tls], address: str, trusted: str) -> str:
  if tls is not None:
    return f"link: encrypted (TLS, {trusted})"
  if is_loopback(host_of(address)):
    return f"link: not encrypted (no TLS; {address} is loopback: this machine only)"
  return (f"link: not encrypted (--insecure: no TLS on {address}; anyone on the network "
          "can read and change what is sent)")


def _runtime_host(host: str) -> str:
  """Where the SuperLink's own SuperExec connects: Flower (supercore/address.py,
  resolve_bind_address) turns 0.0.0.0 into 127.0.0.1 and :: into ::1."""
  return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _check_certificate(server_cert: str, host: str) -> None:
  """Refuses a SuperLink certificate that its own SuperExec would reject: it connects to
  `_runtime_host(host)` and checks the name, so a certificate only for the public name
  leaves no process to start runs (Flower logs the handshake error and carries on)."""
  try:
    from cryptography import x509  # pylint: disable=g-import-not-at-top
    with open(server_cert, "rb") as f:
      certificate = x509.load_pem_x509_certificate(f.read())
  except ImportError:
    return
  except (OSError, ValueError) as e:
    raise TavitError(f"{server_cert}: not a readable PEM certificate ({e})") from e
  target = _runtime_host(host)
  try:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
  except x509.ExtensionNotFound:
    names = None
  try:
    ip = ipaddress.ip_address(target)
    valid = names is not None and ip in names.get_values_for_type(x509.IPAddress)
    entry = f"IP:{ip}"
  except ValueError:
    dns = [] if names is None else names.get_values_for_type(x509.DNSName)
    valid = any(name.lower() in (target.lower(), "*." + target.lower().partition(".")[2])
                for name in dns)
    entry = f"DNS:{target}"
  if not valid:
    raise TavitError(
        f"{server_cert} is not valid for {target}, where the SuperLink's own SuperExec "
        f"connects to start runs: add {entry} to its subjectAltName (see the README)")


def superlink_security(host: str, port: int, tls: Optional[Tls] = None, node_auth: bool = False,
                       insecure: bool = False) -> list[str]:
  """The SuperLink's two startup log lines (link encrypted? nodes authenticated?); raises
  TavitError for a non-loopback `host` without TLS unless `insecure`, or node auth
  without TLS (Flower authenticates SuperNodes only over TLS)."""
  address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
  _check_plaintext("listen on", address, tls, insecure, "--tls_dir")
  if node_auth and tls is None:
    raise TavitError("--node_auth needs --tls_dir: Flower authenticates SuperNodes only over TLS")
  if tls is not None:
    _check_certificate(tls.server_cert, host)
  if node_auth:
    nodes = "nodes: authenticated (--node_auth: only SuperNodes whose public key is registered may join)"
  else:
    nodes = (f"nodes: not authenticated (any SuperNode that reaches {address} may join; "
             "--node_auth with --tls_dir restricts it)")
  return [_link_line(tls, address, f"certificate {tls.server_cert}" if tls else ""), nodes]


def client_security(superlink: str, tls: Optional[Tls] = None, auth_key: str = "",
                    insecure: bool = False) -> list[str]:
  """The client's two startup log lines (link to the SuperLink encrypted? this node
  authenticated?); raises TavitError for a non-loopback SuperLink without TLS unless
  `insecure`, or a key without TLS."""
  _check_plaintext("connect to", superlink, tls, insecure, "--ca_cert")
  if auth_key and tls is None:
    raise TavitError("--auth_key needs --ca_cert: Flower authenticates SuperNodes only over TLS")
  node = (f"node: authenticated (key {auth_key})" if auth_key else
          "node: not authenticated (no --auth_key; a SuperLink with --node_auth refuses it)")
  return [_link_line(tls, superlink, f"SuperLink certificate checked against {tls.ca_cert}"
                     if tls else ""), node]


def run_security(superlink: str, tls: Optional[Tls] = None, insecure: bool = False) -> list[str]:
  """`tavit-flower run`'s startup log line (link to the SuperLink encrypted?); raises
  TavitError for a non-loopback SuperLink without TLS unless `insecure`."""
  _check_plaintext("connect to", superlink, tls, insecure, "--ca_cert")
  return [_link_line(tls, superlink, f"SuperLink certificate checked against {tls.ca_cert}"
                     if tls else "")]


def environment(extra: Optional[dict] = None) -> dict:
  """This environment plus `FLOWER_ENV`, with this Python's bin folder first on PATH
  (Flower's processes start further Flower entry points by name)."""
  path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
  return {**os.environ, "PATH": path, **FLOWER_ENV, **(extra or {})}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def flower_bin(name: str) -> str:
  """A Flower entry point next to this Python (the venv's), else on PATH."""
  candidate = os.path.join(os.path.dirname(sys.executable), name)
  return candidate if os.path.exists(candidate) else name


def superlink_command(port: int, tls: Optional[Tls] = None, node_auth: bool = False,
                      host: str = "127.0.0.1", insecure: bool = False) -> list[str]:
  """Fleet, Control and Runtime APIs on one HTTP port; `host` 0.0.0.0 to accept other
  machines, which needs `tls` or `insecure` (checked as `superlink_security` checks)."""
  superlink_security(host, port, tls, node_auth, insecure)
  command = [flower_bin("flower-superlink"), "--host", host, "--port", str(port),
             "--disable-runtime-dependency-installation"]
  if tls is None:
    command.append("--insecure")
  else:
    command += ["--ssl-ca-certfile", tls.ca_cert, "--ssl-certfile", tls.server_cert,
                "--ssl-keyfile", tls.server_key]
  if node_auth:
    command.append("--enable-supernode-auth")
  return command


def supernode_command(superlink: str, runtime_port: int, node_config: dict,
                      tls: Optional[Tls] = None, auth_key: str = "") -> list[str]:
  """The client's SuperNode; its Runtime API on 127.0.0.1:`runtime_port`. Without `tls` it
  dials `superlink` in plaintext: `client_security` checks that first."""
  pairs = " ".join(f"{key}={json.dumps(value)}" for key, value in node_config.items())
  command = [flower_bin("flower-supernode"), "--superlink", superlink, "--port", str(runtime_port),
             "--node-config", pairs]
  command += ["--insecure"] if tls is None else ["--root-certificates", tls.ca_cert]
  if auth_key:
    command += ["--auth-supernode-private-key", auth_key]
  return command


def write_app(directory: str) -> str:
  """The Flower app project (`flwr run` builds it into a FAB): a pyproject.toml whose
  components are this package's ServerApp and ClientApp."""
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "pyproject.toml"), "wb") as f:
    tomli_w.dump(APP_TOML, f)
  return directory


def write_flower_home(flwr_home: str, superlink: str, tls: Optional[Tls] = None) -> str:
  """$FLWR_HOME/config.toml with the SuperLink connection `CONNECTION` as default."""
  connection = {"address": superlink}
  connection.update({"insecure": True} if tls is None else {"root-certificates": tls.ca_cert})
  os.makedirs(flwr_home, exist_ok=True)
  with open(os.path.join(flwr_home, "config.toml"), "wb") as f:
    tomli_w.dump({"superlink": {"default": CONNECTION, CONNECTION: connection}}, f)
  return flwr_home


def write_run_config(path: str, config: str, overrides: dict, workdir: str) -> str:
  """The run config file for `flwr run --run-config`; paths made absolute for the server."""
  config_path, _, arg = config.partition(":")
  spec = os.path.abspath(config_path) + (f":{arg}" if arg else "")
  with open(path, "wb") as f:
    tomli_w.dump({"config": spec, "overrides": json.dumps(overrides),
                  "workdir": os.path.abspath(workdir)}, f)
  return path


def run_command(app_dir: str, run_config: str) -> list[str]:
  return [flower_bin("flwr"), "run", app_dir, CONNECTION, "--run-config", run_config, "--stream"]


def start(command: list[str], log_path: str, env: Optional[dict] = None) -> subprocess.Popen:
  """`command` in a new session, stdout and stderr to `log_path`."""
  os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
  with open(log_path, "ab") as log_file:
    return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                            env=environment(env),
                            start_new_session=True)


def descendants(pid: int) -> list[int]:
  """Child processes, recursively (Linux /proc; [] elsewhere)."""
  children = []
  try:
    for tid in os.listdir(f"/proc/{pid}/task"):
      with open(f"/proc/{pid}/task/{tid}/children") as f:
        children += [int(c) for c in f.read().split()]
  except OSError:
    return []
  return children + [d for c in children for d in descendants(c)]


def stop(process: subprocess.Popen, kill: bool = False, grace: float = 10.0) -> None:
  """Stops the process, its session and its descendants (some Flower processes start
  their own session): SIGTERM (or SIGKILL: a crash), then SIGKILL."""
  if process.poll() is not None:
    return
  tree = descendants(process.pid)
  try:
    os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    process.wait(timeout=grace)
  except subprocess.TimeoutExpired:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
  except ProcessLookupError:
    pass
  kills = [(os.killpg, process.pid)] + [(os.kill, pid) for pid in tree]
  for kill_fn, pid in kills:  # What outlived the leader.
    try:
      kill_fn(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
      pass


def wait_for_port(port: int, timeout: float = 60.0, host: str = "127.0.0.1") -> None:
  deadline = time.time() + timeout
  while time.time() < deadline:
    with socket.socket() as s:
      if s.connect_ex((host, port)) == 0:
        return
    time.sleep(0.2)
  raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


# A whole deployment on this machine: every part is a real, separate process that can be
# killed and restarted (the tests do).
class LocalDeployment:
  """Layout under `workdir`: server/ (the ServerApp's workdir), client<k>/, logs/."""

  def __init__(self, config: str, overrides: dict, workdir: str, num_clients: int,
               env: Optional[dict] = None):
    """`env`: extra environment of every process (e.g. JAX_COMPILATION_CACHE_DIR)."""
    self.config, self.overrides, self.env = config, dict(overrides), dict(env or {})
    self.workdir = os.path.abspath(workdir)
    self.num_clients = num_clients
    self.port = free_port()
    self.superlink: Optional[subprocess.Popen] = None
    self.clients: dict[int, subprocess.Popen] = {}
    self.run_process: Optional[subprocess.Popen] = None
    self.server_dir = os.path.join(self.workdir, "server")
    flower = os.path.join(self.server_dir, "flower")
    self.app_dir = write_app(os.path.join(flower, "app"))
    self.flwr_home = write_flower_home(os.path.join(flower, "home"), self.address)
    self.run_config = write_run_config(os.path.join(flower, "run_config.toml"), config,
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
    self.superlink = start(superlink_command(self.port), self.log("superlink"),
                                  {**self.env, "FLWR_HOME": home})
    wait_for_port(self.port)

  def stop_superlink(self, kill: bool = False) -> None:
    if self.superlink is not None:
      stop(self.superlink, kill=kill)

  def client_command(self, k: int, program: tuple = ("-m", "tavit_jax.cli.flower")) -> list[str]:
    """`tavit-flower client` for client k; `program` may name another script with its CLI."""
    return [sys.executable, *program, "client", f"--config={self.config}",
            f"--client_index={k}", f"--workdir={self.client_dir(k)}",
            f"--superlink={self.address}",
            *(config_files.override_flag(key, value) for key, value in self.overrides.items())]

  def start_client(self, k: int, command: Optional[list[str]] = None,
                   env: Optional[dict] = None) -> None:
    """Client k's process (`command`: another than `tavit-flower client`; `env`: added to
    the deployment's environment for this client only)."""
    self.clients[k] = start(command or self.client_command(k), self.log(f"client{k}"),
                            {**self.env, **(env or {})})

  def stop_client(self, k: int, kill: bool = False) -> None:
    stop(self.clients.pop(k), kill=kill)

  def start_run(self) -> subprocess.Popen:
    """`flwr run` of the ServerApp; its streamed log goes to logs/run.log."""
    self.run_process = start(run_command(self.app_dir, self.run_config),
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
        stop(process)
    self.clients.clear()

  def __enter__(self) -> "LocalDeployment":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


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
