"""Secure by default (README: 'Secure by default'), and the README's TLS + SuperNode-auth
walkthrough typed as a user types it.

The refusals run the installed `tavit-flower` console script and fail before any Flower
process starts: exit status 2, one `error:` line, no traceback (about a second each). The
`--insecure` opt-out on a public address is checked on the launch builders in-process (no
test opens a port on every interface); a loopback SuperLink without TLS is a real process.
The walkthrough (marked slow) runs the README's own commands: openssl certificates, a TLS
SuperLink with node auth, registered SuperNode keys, two clients and the run.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from tavit_jax.errors import TavitError
from tavit_jax.flower import launch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAVIT_FLOWER = os.path.join(os.path.dirname(sys.executable), "tavit-flower")
CONFIG = "--config=" + os.path.join(ROOT, "configs", "flower_tiny.py")
with open(os.path.join(ROOT, "README.md")) as f:
  README = f.read()


def tavit_flower(*args: str, cwd) -> subprocess.CompletedProcess:
  return subprocess.run([TAVIT_FLOWER, *args], cwd=cwd, capture_output=True, text=True,
                        timeout=120, check=False)


def assert_refused(result: subprocess.CompletedProcess, message: str) -> None:
  """Exit status 2, one `error:` line containing `message`, no traceback, nothing else."""
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
  assert message in lines[0], lines[0]
  assert "Traceback" not in result.stderr and not result.stdout.strip(), result


@pytest.mark.parametrize("flags, message", [
    (["--host=0.0.0.0"], "refusing to listen on 0.0.0.0:9093 without TLS: give --tls_dir"),
    (["--host=::"], "refusing to listen on [::]:9093 without TLS"),
    (["--host=192.0.2.7", "--port=9100"], "refusing to listen on 192.0.2.7:9100 without TLS"),
    (["--node_auth"], "--node_auth needs --tls_dir"),
    (["--tls_dir=certs", "--insecure"], "give --tls_dir (TLS) or --insecure (no TLS), not both"),
])
def test_superlink_refuses_a_public_address_without_tls(flags, message, tmp_path):
  assert_refused(tavit_flower("superlink", *flags, cwd=tmp_path), message)
  assert not os.listdir(tmp_path)  # Nothing started, nothing written.


@pytest.mark.parametrize("command, superlink", [
    ("client", "192.0.2.1:9093"), ("client", "[2001:db8::1]:9093"),
    ("run", "server.example.org:9093"), ("run", "0.0.0.0:9093")])
def test_client_and_run_refuse_to_dial_a_remote_superlink_without_tls(command, superlink,
                                                                      tmp_path):
  flags = ["--client_index=0"] if command == "client" else []
  result = tavit_flower(command, CONFIG, f"--workdir={tmp_path / 'work'}",
                        f"--superlink={superlink}", *flags, cwd=tmp_path)
  assert_refused(result, f"refusing to connect to {superlink} without TLS: give --ca_cert")
  assert not os.path.exists(tmp_path / "work")  # No worker, SuperNode or `flwr run`.


@pytest.mark.parametrize("flags, message", [
    (["--superlink=127.0.0.1:9093", "--auth_key=keys/client0"], "--auth_key needs --ca_cert"),
    (["--superlink=10.0.0.5:9093", "--ca_cert=ca.crt", "--insecure"], "not both"),
])
def test_client_refuses_node_auth_without_tls(flags, message, tmp_path):
  result = tavit_flower("client", CONFIG, f"--workdir={tmp_path / 'work'}", "--client_index=0",
                        *flags, cwd=tmp_path)
  assert_refused(result, message)


def test_local_takes_no_insecure(tmp_path):
  assert_refused(tavit_flower("local", CONFIG, f"--workdir={tmp_path}", "--insecure", cwd=tmp_path),
                 "tavit-flower local takes no --insecure")


def test_insecure_is_the_explicit_opt_out_and_the_log_says_so(tmp_path):
  """What `tavit-flower superlink --host=0.0.0.0 --insecure` and a client and run with
  `--insecure` hand to Flower, and the lines they log first."""
  with pytest.raises(TavitError, match="refusing to listen on 0.0.0.0:9093 without TLS"):
    launch.superlink_command(9093, host="0.0.0.0")
  command = launch.superlink_command(9093, host="0.0.0.0", insecure=True)
  assert command[command.index("--host") + 1] == "0.0.0.0" and "--insecure" in command
  link, nodes = launch.superlink_security("0.0.0.0", 9093, insecure=True)
  assert link.startswith("link: not encrypted (--insecure: no TLS on 0.0.0.0:9093")
  assert nodes.startswith("nodes: not authenticated (any SuperNode that reaches 0.0.0.0:9093")

  link, node = launch.client_security("10.0.0.5:9093", insecure=True)
  assert link.startswith("link: not encrypted (--insecure: no TLS on 10.0.0.5:9093")
  assert node.startswith("node: not authenticated")
  assert "--insecure" in launch.supernode_command("10.0.0.5:9093", 9094, {})
  (link,) = launch.run_security("10.0.0.5:9093", insecure=True)
  assert link.startswith("link: not encrypted (--insecure")
  home = launch.write_flower_home(str(tmp_path), "10.0.0.5:9093")
  with open(os.path.join(home, "config.toml")) as f:
    assert "insecure = true" in f.read()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.4.5.6", "::1", "localhost", "LOCALHOST."])
def test_loopback_needs_no_tls(host):
  assert launch.is_loopback(host)
  port_suffix = f"[{host}]:9093" if ":" in host else f"{host}:9093"
  assert launch.host_of(port_suffix) == host
  link, nodes = launch.superlink_security(host, 9093)
  assert link.startswith("link: not encrypted (no TLS;") and "is loopback" in link
  assert nodes.startswith("nodes: not authenticated")
  assert launch.client_security(port_suffix)[0].startswith("link: not encrypted (no TLS;")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "server.example.org",
                                  "localhost.example.org", "::ffff:10.0.0.1"])
def test_every_other_address_is_remote(host):
  assert not launch.is_loopback(host)


def make_certificates(directory, san: str) -> launch.Tls:
  """The README's openssl commands with 2048-bit keys and the given subjectAltName."""
  os.makedirs(directory, exist_ok=True)
  script = f"""set -e
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tavit-ca" -keyout ca.key -out ca.crt
  openssl req -newkey rsa:2048 -nodes -subj "/CN=server" -keyout server.key -out server.csr
  printf "subjectAltName={san}" > san.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \\
    -extfile san.ext -out server.pem"""
  subprocess.run(["bash", "-c", script], cwd=directory, check=True, capture_output=True)
  path = lambda name: os.path.join(directory, name)
  return launch.Tls(path("ca.crt"), path("server.pem"), path("server.key"))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_a_certificate_the_superlinks_own_superexec_would_reject_is_refused(tmp_path):
  """Flower's SuperExec reaches a SuperLink on 0.0.0.0 at 127.0.0.1 over TLS: a certificate
  for the public name only would leave no process to start runs."""
  public_only = make_certificates(tmp_path / "public", "DNS:server.example.org")
  with pytest.raises(TavitError, match="not valid for 127.0.0.1.*add IP:127.0.0.1"):
    launch.superlink_security("0.0.0.0", 9093, public_only, node_auth=True)
  tls = make_certificates(tmp_path / "both", "DNS:server.example.org,IP:127.0.0.1")
  link, nodes = launch.superlink_security("0.0.0.0", 9093, tls, node_auth=True)
  assert link == f"link: encrypted (TLS, certificate {tls.server_cert})"
  assert nodes.startswith("nodes: authenticated (--node_auth")
  with pytest.raises(TavitError, match="not valid for 192.0.2.7.*add IP:192.0.2.7"):
    launch.superlink_security("192.0.2.7", 9093, tls)
  assert launch.client_security("server.example.org:9093", launch.Tls(tls.ca_cert),
                                "keys/client0")[1] == "node: authenticated (key keys/client0)"


def wait_for_lines(path: str, count: int, timeout: float = 60.0) -> list[str]:
  deadline = time.time() + timeout
  while time.time() < deadline:
    if os.path.exists(path):
      with open(path) as f:
        lines = f.read().splitlines()
      if len(lines) >= count:
        return lines
    time.sleep(0.1)
  raise AssertionError(f"{path} has fewer than {count} lines after {timeout} s")


def command_line(pid: int) -> list[str]:
  with open(f"/proc/{pid}/cmdline", "rb") as f:
    return f.read().decode().split("\0")


def test_a_loopback_superlink_starts_without_tls_and_says_so(tmp_path):
  """A real `tavit-flower superlink` with no flag: loopback, Flower's --insecure, and the
  two lines first in its log."""
  pytest.importorskip("flwr")
  port = launch.free_port()
  log = str(tmp_path / "superlink.log")
  process = launch.start([TAVIT_FLOWER, "superlink", f"--port={port}"], log,
                         {"FLWR_HOME": str(tmp_path / "home")})
  try:
    launch.wait_for_port(port)
    first = wait_for_lines(log, 2)[:2]
    assert first == [
        f"[tavit-flower superlink] link: not encrypted (no TLS; 127.0.0.1:{port} is loopback: "
        "this machine only)",
        f"[tavit-flower superlink] nodes: not authenticated (any SuperNode that reaches "
        f"127.0.0.1:{port} may join; --node_auth with --tls_dir restricts it)"]
    flower = [command_line(pid) for pid in launch.descendants(process.pid)]
    (superlink,) = [c for c in flower if "flower-superlink" in map(os.path.basename, c[:2])]
    assert superlink[superlink.index("--host") + 1] == "127.0.0.1" and "--insecure" in superlink
  finally:
    launch.stop(process)


# The README walkthrough. Swaps: the server's name and port (a free one on this machine),
# 2048-bit keys, and --host=127.0.0.1 for 0.0.0.0 (no test listens on every interface; the
# certificate names 127.0.0.1 either way).
def walkthrough_section() -> str:
  start = README.index("### Across machines, with TLS and SuperNode authentication")
  return README[start:README.index("### Secure by default")]


def fenced(text: str, language: str = "") -> list[str]:
  return [body for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
          if lang == language]


def user_commands(block: str) -> list[str]:
  """Commands of a block: continuations joined, `machine$ ` prompts and comments dropped."""
  commands = []
  for line in block.replace("\\\n", " ").splitlines():
    line = re.sub(r"^\w+\$\s+", "", line.split("  #")[0].strip())
    if line:
      commands.append(" ".join(line.split()))
  return commands


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("ssh-keygen") is None,
                    reason="needs openssl and ssh-keygen")
def test_readme_tls_and_node_auth_walkthrough(data_dir, tmp_path):
  pytest.importorskip("flwr")
  port = launch.free_port()
  address = f"localhost:{port}"

  def swap(text: str) -> str:
    return (text.replace("server.example.org:9093", address).replace("server.example.org", "localhost")
            .replace("--port=9093", f"--port={port}").replace("--host=0.0.0.0", "--host=127.0.0.1")
            .replace("rsa:4096", "rsa:2048"))

  cwd = tmp_path / "user"
  cwd.mkdir()
  shutil.copytree(os.path.join(ROOT, "configs"), cwd / "configs")
  env = {"TAVIT_DATA_DIR": data_dir, "FLWR_HOME": str(tmp_path / "flwr_home_default")}
  shell_env = launch.environment(env)
  sh = lambda command: subprocess.run(command, shell=True, cwd=cwd, env=shell_env, check=True,
                                      capture_output=True, text=True, timeout=120)
  certificates, log_lines, keys, toml, clients_and_run = fenced(walkthrough_section())[:3] + [
      fenced(walkthrough_section(), "toml")[0], fenced(walkthrough_section())[3]]
  *make_certs, superlink = user_commands(swap(certificates))
  assert superlink.startswith("tavit-flower superlink") and "--tls_dir" in superlink
  sh(" && ".join(make_certs))
  in_cwd = lambda command: ["bash", "-c", f"cd {shlex.quote(str(cwd))} && {command}"]
  processes = []
  try:
    processes.append(launch.start(in_cwd(superlink), str(tmp_path / "superlink.log"),
                                  {**env, "FLWR_HOME": str(tmp_path / "superlink_home")}))
    launch.wait_for_port(port)
    expected = [line.replace("/home/you/certs/server.pem", str(cwd / "certs" / "server.pem"))
                for line in log_lines.splitlines()]
    assert wait_for_lines(str(tmp_path / "superlink.log"), 2)[:2] == expected

    # Keys for both clients; `flwr` names the SuperLink in flower_home; register them.
    (cwd / "flower_home").mkdir()
    (cwd / "flower_home" / "config.toml").write_text(
        swap(toml).replace("/home/you/ca.crt", str(cwd / "ca.crt")))
    shutil.copy(cwd / "certs" / "ca.crt", cwd / "ca.crt")  # "Copy certs/ca.crt to every client".
    for k in (0, 1):
      for command in user_commands(swap(keys)):
        sh(command.replace("client0", f"client{k}"))

    # The clients, then the run; one client-phase and one server-phase step.
    shorter = " '--config.train.client_phase_steps=(1,)' --config.train.server_phase_steps=1"
    *clients, run = user_commands(swap(clients_and_run))
    assert [c.split()[1] for c in clients] == ["client", "client"] and run.split()[1] == "run"
    for k, client in enumerate(clients):
      processes.append(launch.start(in_cwd(client + shorter),
                                    str(tmp_path / f"client{k}.log"), env))
    run_log = str(tmp_path / "run.log")
    processes.append(launch.start(in_cwd(run + shorter), run_log, env))
    code = processes[-1].wait(timeout=900)
    with open(run_log) as f:
      text = f.read()
    assert code == 0 and "finished at step 2" in text, text[-3000:]
    assert text.splitlines()[0] == (
        f"[tavit-flower run] link: encrypted (TLS, SuperLink certificate checked against "
        f"{cwd / 'ca.crt'})")
    for k in (0, 1):
      first = wait_for_lines(str(tmp_path / f"client{k}.log"), 2)[:2]
      assert first == [f"[tavit-flower client] link: encrypted (TLS, SuperLink certificate "
                       f"checked against {cwd / 'ca.crt'})",
                       f"[tavit-flower client] node: authenticated (key {cwd / 'keys' / f'client{k}'})"]
  finally:
    for process in reversed(processes):
      launch.stop(process)
