"""TAViT over Flower on real processes (SuperLink, SuperNodes, client workers) on loopback.

Equivalence with the in-process run, bytes on the wire, a client killed and restarted,
the server killed and restarted, and a client sending features of the wrong dtype.
"""

import concurrent.futures
import os
import time

import jax
import numpy as np
import pytest

pytest.importorskip("flwr")

# pylint: disable=g-import-not-at-top,wrong-import-position
from tavit_jax import models
from tavit_jax.errors import TavitError
from tavit_jax.flower import launch, settings
from tavit_jax.flower.server import BodyServer
from tavit_jax.flower.records import read_jsonl, summarize
from tavit_jax.flower.worker import ClientWorker
from tavit_jax.training import protocols, state as state_lib
from tavit_jax.training.checkpoints import Checkpoints
from tavit_jax.training.loop import train_and_evaluate

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "flower_tiny.py")
BAD_CLIENT = os.path.join(ROOT, "tests", "flower_bad_client.py")
# Flower composes the split primitives one message at a time, the in-process run fuses them
# into one program per client, so XLA may round differently (on a 2-core CPU the results
# were bitwise equal).
RTOL, ATOL = 1e-4, 1e-5
RUN_TIMEOUT = 900  # Seconds. A round trip takes seconds: Flower polls, and starts a process
                   # per message.


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
  """Every process of every deployment shares one compilation cache: a restarted client
  or a second deployment does not compile again."""
  return {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache")),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def overrides(data_dir, **more):
  return {"data.data_dir": data_dir, **more}


def in_process(config, workdir):
  """The reference: `train_and_evaluate`, then its final state."""
  train_and_evaluate(config, workdir)
  model = models.build(config.model, config.data.patch_size)
  client_tx, server_tx = state_lib.optimizers(
      config.train, protocols.make_schedule(config.train, len(config.clients)))
  like = jax.eval_shape(lambda: state_lib.init_state(model, list(config.clients), client_tx,
                                                     server_tx, jax.random.PRNGKey(config.seed)))
  checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"))
  state, _ = checkpoints.restore(checkpoints.latest_step(), like)
  checkpoints.close()
  return state


def assert_close(actual, expected, what):
  actual, expected = jax.tree_util.tree_leaves_with_path(actual), jax.tree_util.tree_leaves(expected)
  assert len(actual) == len(expected), what
  for (path, a), b in zip(actual, expected):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL,
                               err_msg=f"{what}{jax.tree_util.keystr(path)}")


def assert_same_as_in_process(deployment, config, reference):
  server = BodyServer(config, deployment.server_dir)
  assert server.step == reference["step"]
  assert_close(server.state["body"], reference["server"]["body"], "body")
  assert_close(server.state["opt"], reference["server"]["opt"], "body optimizer")
  server.checkpoints.close()
  for k in range(len(config.clients)):
    worker = ClientWorker(config, k, deployment.client_dir(k))
    expected = jax.tree_util.tree_map(lambda a, k=k: a[k], reference["clients"])
    for part in ("head", "tail", "opt"):
      assert_close(worker.state[part], expected[part], f"client {k} {part}")
    worker.checkpoints.close()


def events(deployment, kind=None):
  rows = read_jsonl(os.path.join(deployment.server_dir, "events.jsonl"))
  return [r for r in rows if kind is None or r["event"] == kind]


def wait_until(condition, timeout, what, deployment):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if condition():
      return
    if deployment.run_process is not None and deployment.run_process.poll() is not None:
      break
    time.sleep(0.5)
  with open(deployment.log("run")) as f:
    tail = f.read()[-3000:]
  raise AssertionError(f"timed out waiting for {what}; run log ends:\n{tail}")


def finish(deployment):
  code = deployment.wait_run(RUN_TIMEOUT)
  with open(deployment.log("run")) as f:
    assert code == 0, f.read()[-3000:]
  assert events(deployment, "finished")


def test_two_tasks_over_flower_end_like_the_in_process_run(data_dir, jax_cache, tmp_path):
  """2 clients (2 tasks), 2 client-phase then 2 server-phase steps; bytes as predicted."""
  changes = overrides(data_dir)
  config = settings.load_config(CONFIG, changes)
  with launch.LocalDeployment(CONFIG, changes, str(tmp_path / "flower"), 2,
                        jax_cache) as deployment:
    deployment.start()
    deployment.start_run()
    reference = in_process(config, str(tmp_path / "in_process"))  # Meanwhile.
    finish(deployment)
    assert_same_as_in_process(deployment, config, reference)
    wire = [r for r in read_jsonl(os.path.join(deployment.server_dir, "wire.jsonl"))
            if "up_predicted" in r]
    assert len(wire) == 4 * 2  # Every step, both clients.
    for row in wire:
      assert row["up_payload"] == row["up_predicted"], row
      assert row["down_payload"] == row["down_predicted"], row
      for direction in ("up", "down"):  # Serialization adds headers, a bounded amount per message.
        overhead = row[f"{direction}_serialized"] - row[f"{direction}_payload"]
        assert 0 < overhead <= 1536 * row[f"{direction}_messages"], row
    per_message = 2 * 8 * 8 * 32 * 4  # batch 2 × f_H of (8, 8, 32) float32.
    assert {(r["phase"], r["up_payload"], r["down_payload"]) for r in wire} == {
        ("client", 2 * per_message, 2 * per_message), ("server", 2 * per_message, per_message)}
    print(summarize(deployment.server_dir))


def test_permuted_punched_tokens_over_flower_end_like_the_in_process_run(data_dir, jax_cache,
                                                                         tmp_path):
  """Shuffled tokens without positions (`model.pos_emb=none`, the defence; `client` takes the
  same code path) and CutMixSL's punching over Flower: each client shuffles with its own
  secret (the in-process run with its key stream; by the body's permutation equivariance
  both end at the same parameters) and sends half of its f_H tokens; the bytes are as
  predicted."""
  changes = overrides(data_dir, **{"model.pos_emb": "none", "train.permute_tokens": "per_sample",
                                   "model.mask_token": True, "train.token_keep": 0.5})
  config = settings.load_config(CONFIG, changes)
  with launch.LocalDeployment(CONFIG, changes, str(tmp_path / "flower"), 2,
                              jax_cache) as deployment:
    deployment.start()
    deployment.start_run()
    reference = in_process(config, str(tmp_path / "in_process"))
    finish(deployment)
    assert_same_as_in_process(deployment, config, reference)
    for k in range(2):
      secret = os.path.join(deployment.client_dir(k), "permutation_secret")
      assert os.stat(secret).st_mode & 0o077 == 0  # This user's only.
    wire = [r for r in read_jsonl(os.path.join(deployment.server_dir, "wire.jsonl"))
            if "up_predicted" in r]
    full = 2 * 8 * 8 * 32 * 4  # batch 2 × f_H of (8, 8, 32) float32.
    assert {(r["phase"], r["up_payload"], r["down_payload"]) for r in wire} == {
        ("client", full // 2 + full, full + full // 2), ("server", full // 2 + full, full)}


def test_killed_client_and_server_resume_without_losing_acknowledged_work(data_dir, jax_cache,
                                                                        tmp_path):
  """Two same-task clients (so FedAvg runs). Client 1 is killed in the client phase and
  restarted; later the SuperLink (with the ServerApp) is killed and restarted. The run
  still ends exactly where the uninterrupted in-process run ends."""
  timeout = 45.0  # A round trip takes 5-15 s on a busy 2-core machine.
  changes = overrides(data_dir, **{
      "clients": ["denoising", "denoising"], "flower.reply_timeout": timeout})
  config = settings.load_config(CONFIG, changes)
  with launch.LocalDeployment(CONFIG, changes, str(tmp_path / "flower"), 2, jax_cache) as deployment, \
      concurrent.futures.ThreadPoolExecutor(1) as pool:
    deployment.start()
    deployment.start_run()
    reference = pool.submit(in_process, config, str(tmp_path / "in_process"))  # Meanwhile.
    steps = lambda: read_jsonl(os.path.join(deployment.server_dir, "steps.jsonl"))
    wait_until(lambda: any(s["step"] == 0 for s in steps()), RUN_TIMEOUT, "step 0", deployment)
    deployment.stop_client(1, kill=True)  # In the middle of the client phase.
    killed = time.time()
    failures = lambda: [e for e in events(deployment, "client_failed")
                        if e["client"] == 1 and e["time"] > killed]
    wait_until(failures, RUN_TIMEOUT, "the failure report", deployment)
    failure = failures()[0]
    assert failure["time"] - killed < timeout + 30, failure
    assert "waiting" in failure["message"]
    deployment.start_client(1)  # Same index and workdir: the same client.
    wait_until(lambda: events(deployment, "resumed"), RUN_TIMEOUT, "client 1 to rejoin", deployment)
    # The server phase: kill the SuperLink with its ServerApp after the checkpoint at step 3.
    checkpoint = os.path.join(deployment.server_dir, "checkpoints", "3")
    wait_until(lambda: os.path.isdir(checkpoint), RUN_TIMEOUT, "the checkpoint at step 3",
               deployment)
    deployment.stop_superlink(kill=True)
    launch.stop(deployment.run_process)  # `flwr run` lost its SuperLink.
    deployment.start_superlink()  # Same port; the clients' SuperNodes rejoin by themselves.
    deployment.start_run()
    finish(deployment)
    resumed = events(deployment, "resumed_server")
    assert resumed and resumed[0]["step"] == 3, resumed
    with open(deployment.log("client1")) as f:
      assert "client 1 resumed from commit" in f.read()
    assert_same_as_in_process(deployment, config, reference.result())


def test_a_client_sending_float64_features_is_rejected_and_the_body_stays_clean(data_dir, jax_cache,
                                                                               tmp_path):
  """Client 1 sends f_H as float64; the server refuses it, says why, and steps the body
  on client 0's gradient alone (= the in-process run of client 0 alone)."""
  changes = overrides(data_dir, **{"train.client_phase_steps": [0], "train.server_phase_steps": 1})
  config = settings.load_config(CONFIG, changes)
  with launch.LocalDeployment(CONFIG, changes, str(tmp_path / "flower"), 2,
                        jax_cache) as deployment:
    deployment.start_superlink()
    deployment.start_client(0)
    deployment.start_client(1, deployment.client_command(1, program=(BAD_CLIENT,)))
    deployment.start_run()
    alone = settings.load_config(CONFIG, {**changes, "clients": ["denoising"]})
    reference = in_process(alone, str(tmp_path / "in_process"))  # Same head, body and batch.
    finish(deployment)
    rejected = events(deployment, "rejected")
    assert [r["client"] for r in rejected] == [1], rejected
    assert "'f_h' has shape (2, 8, 8, 32) and dtype float64; expected (2, 8, 8, 32) float32" in (
        rejected[0]["message"])
    server = BodyServer(config, deployment.server_dir)
    assert_close(server.state["body"], reference["server"]["body"], "body")
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(server.state))
    step = read_jsonl(os.path.join(deployment.server_dir, "steps.jsonl"))[0]
    assert step["skipped"] == [1] and list(step["losses"]) == ["0"]


def test_a_wire_dtype_flower_does_not_send_is_refused_up_front():
  with pytest.raises(TavitError, match="wire_dtype='bfloat16' is simulated by tavit-train only"):
    settings.load_config(CONFIG, {"train.wire_dtype": "bfloat16"})


@pytest.mark.parametrize("override", [{"train.token_mix": "cutmix"}, {"train.mode": "end_to_end"}])
def test_what_flower_does_not_deploy_is_refused_up_front(override):
  with pytest.raises(TavitError, match="run in tavit-train only"):
    settings.load_config(CONFIG, override)


@pytest.mark.parametrize("override", [{"data.train_images": 2}, {"data.eval_split": "validation"},
                                      {"train.body_from": "elsewhere"}])
def test_study_options_of_tavit_train_are_refused_up_front(override):
  (dotted, value), = override.items()
  with pytest.raises(TavitError, match=f"{dotted}={value!r} is a tavit-train study option"):
    settings.load_config(CONFIG, override)
