"""The single round over Flower (docs/design.md §4.4, §7): chunked transfers, the server's
upload store, byte accounting, and one end-to-end run on real processes (SuperLink,
SuperNodes, client workers on loopback) that forces several upload and download messages,
has a client die in local training and another in fine-tuning, kills the server during
self-distillation, and ends with the in-process run's parameters and results table."""

import concurrent.futures
import os
import re
import threading

import jax
import numpy as np
import pytest

pytest.importorskip("flwr")

# pylint: disable=g-import-not-at-top,wrong-import-position
from jax.flatten_util import ravel_pytree

from tavit_jax import models
from tavit_jax.evaluation import communication
from tavit_jax.flower import chunks, client_results, launch, settings, wire
from tavit_jax.flower.fleet import Rejected
from tavit_jax.flower.records import read_jsonl
from tavit_jax.flower.single_round_client import SingleRoundWorker
from tavit_jax.flower.single_round_server import initial_state
from tavit_jax.flower.upload_store import UploadStore
from tavit_jax.training import protocols, state as state_lib
from tavit_jax.training.checkpoints import Checkpoints
from tavit_jax.training.loop import train_and_evaluate
from tavit_jax.training.protocols import single_round
from flower_crashing_client import CRASH_CODE
from test_flower import events, jax_cache, RTOL, ATOL, RUN_TIMEOUT, wait_until  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "single_round.py") + ":tiny"
CRASHING_CLIENT = os.path.join(ROOT, "tests", "flower_crashing_client.py")
SHAPE = (4, 64, 32)  # The tiny config's upload: 2 batches of 2 samples, 8x8 tokens of width 32.


def test_row_ranges_cover_an_array_in_messages_under_the_limit():
  assert chunks.row_ranges(10, 100, 300) == [(0, 3), (3, 6), (6, 9), (9, 10)]
  assert chunks.row_ranges(3, 100, 10) == [(0, 1), (1, 2), (2, 3)]  # A row at least.
  assert chunks.row_ranges(3, 100, 2**31) == [(0, 3)]
  array = np.arange(4 * 64 * 32, dtype=np.float32).reshape(SHAPE)
  ranges = chunks.array_ranges(array.shape, array.dtype, 9000)  # 8192 B a row: one each.
  assembly = chunks.Assembly(array.shape, ranges)
  for start, stop in reversed(ranges):  # In any order.
    assert not assembly.complete()
    assembly.add(start, stop, array[start:stop])
  np.testing.assert_array_equal(assembly.value(), array)


def _store(tmp_path, chunk_bytes=9000):
  return UploadStore(str(tmp_path / "uploads"), 2, SHAPE, chunk_bytes)


def _files(tmp_path):
  folder = tmp_path / "uploads"
  return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_store_keeps_uploads_on_disk_for_a_restarted_server(tmp_path):
  tokens = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
  store = _store(tmp_path)
  assert len(store.ranges) == 4
  for start, stop in store.ranges[:3]:
    store.add(1, start, stop, tokens[start:stop])
  restarted = _store(tmp_path)
  assert restarted.missing(1) == [(3, 4)] and restarted.missing(0) == store.ranges
  restarted.add(1, 3, 4, tokens[3:])
  assert restarted.complete_clients() == [1]
  np.testing.assert_array_equal(restarted.tokens([1])[0], tokens)


@pytest.mark.parametrize("client,rows,array,reason", [
    (0, (0, 1), np.zeros((1, 64, 32), np.float64), "dtype float64"),
    (0, (0, 1), np.zeros((2, 64, 32), np.float32), "shape (2, 64, 32)"),
    (0, (0, 1), np.full((1, 64, 32), np.nan, np.float32), "non-finite"),
    (0, (0, 2), np.zeros((2, 64, 32), np.float32), "rows 0:2 are not a chunk"),
    (0, (1, 2), np.zeros((1, 64, 32), np.float32), "rows 1:2 were already received"),
    (5, (0, 1), np.zeros((1, 64, 32), np.float32), "client 5, which is not in this run"),
    (0, (0, 1), None, "no 'rows 0:1' was sent"),
])
def test_a_malformed_or_duplicate_upload_is_refused_and_the_store_is_unchanged(
    tmp_path, client, rows, array, reason):
  store = _store(tmp_path)
  held = np.ones((1, 64, 32), np.float32)
  store.add(0, 1, 2, held)
  before = _files(tmp_path), store.missing(0), store.missing(1)
  with pytest.raises(Rejected, match=re.escape(reason)) as refusal:
    store.add(client, *rows, array)
  assert "\n" not in str(refusal.value)  # One line.
  assert (_files(tmp_path), store.missing(0), store.missing(1)) == before
  assert _store(tmp_path).missing(0) == [(0, 1), (2, 3), (3, 4)]  # As on disk.


def test_the_chunks_carry_exactly_the_predicted_bytes():
  """What the server logs per client (the arrays of its messages) is the communication
  table's prediction, however many messages the chunk size makes."""
  config = settings.load_config(CONFIG)
  model = models.build(config.model, config.data.patch_size)
  predicted = communication.single_round_bytes(model, config, "float32")
  body = model.init_body(jax.random.PRNGKey(0))
  vector = np.asarray(ravel_pytree(body)[0], np.float32)
  for chunk_bytes in (9000, 3000, 2**28):
    up = [np.zeros((b - a, *SHAPE[1:]), np.float32)
          for a, b in chunks.array_ranges(SHAPE, np.float32, chunk_bytes)]
    down = [vector[a:b] for a, b in chunks.array_ranges(vector.shape, np.float32, chunk_bytes)]
    sizes = lambda arrays, name: sum(  # As wire.array_sizes counts a message's arrays.
        int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize for arrays_ in arrays
        for a in wire.content({}, {name: arrays_}).array_records["arrays"].values())
    assert sizes(up, "tokens") == predicted["upload_bytes"]
    assert sizes(down, "body") == predicted["download_bytes"]


def _in_process(config, workdir):
  """tavit-train's single round: its final state (with the single round's extras) and the
  rows of its last evaluation."""
  rows = train_and_evaluate(config, workdir)
  model = models.build(config.model, config.data.patch_size)
  chosen = protocols.select(config.train)
  client_tx, server_tx = state_lib.optimizers(
      config.train, chosen.phases(config.train, len(config.clients)))
  like = jax.eval_shape(lambda: chosen.init_state(model, config, state_lib.init_state(
      model, list(config.clients), client_tx, server_tx, jax.random.PRNGKey(config.seed)),
                                                  server_tx))
  checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"))
  state, _ = checkpoints.restore(checkpoints.latest_step(), like)
  checkpoints.close()
  return state, [r for r in rows if r["phase"] == rows[-1]["phase"]]


def _start_crashing_client(deployment, k: int, crash_in: str) -> None:
  """Client k as tests/flower_crashing_client.py, dying once where `crash_in` says."""
  deployment.start_client(k, deployment.client_command(k, (CRASHING_CLIENT,)),
                          {"TAVIT_TEST_CRASH_IN": crash_in})


def _restart_when_dead(deployment, crash_in: dict, stopping: threading.Event,
                       exits: list) -> None:
  """Starts a client process again when it has died (its exit code into `exits`)."""
  while not stopping.wait(0.5):
    for k, process in list(deployment.clients.items()):
      if process.poll() is not None:
        exits.append((k, process.returncode))
        _start_crashing_client(deployment, k, crash_in[k])


def _flower_server(config, server_dir):
  model = models.build(config.model, config.data.patch_size)
  phases = protocols.make_schedule(config.train, len(config.clients))
  _, server_tx = state_lib.optimizers(config.train, phases)
  like = jax.eval_shape(lambda: initial_state(model, config, server_tx, phases))
  checkpoints = Checkpoints(os.path.join(server_dir, "checkpoints"))
  state, _ = checkpoints.restore(checkpoints.latest_step(), like)
  checkpoints.close()
  return state


def _assert_close(actual, expected, what):
  """As test_flower's, except the attention keys' biases: they shift every score of a query
  alike, which the softmax removes, so their gradient is zero but for float rounding and
  Adam's normalised steps of that rounding are all they hold (no output depends on them)."""
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual),
                          jax.tree_util.tree_leaves(expected), strict=True):
    name = jax.tree_util.keystr(path)
    if "['key']['bias']" not in name:
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL,
                                 err_msg=what + name)


@pytest.mark.slow
def test_the_single_round_over_flower_ends_like_the_in_process_run(data_dir, jax_cache,
                                                                   tmp_path):
  """Two clients; uploads in 4 messages and the body in 3 (a small `flower.chunk_bytes`);
  client 0 dies in local training and client 1 in fine-tuning (tests/flower_crashing_client.py)
  and both are started again; the SuperLink with its ServerApp killed during
  self-distillation and restarted, which asks no client to upload again. Each client holds
  the in-process run's simulated secret, so both runs draw the same token orders; the bytes
  logged are the predicted ones; the clients' scores make tavit-train's results table."""
  dino_steps, every = 600, 50
  changes = {"data.data_dir": data_dir, "clients": ["denoising", "deraining"],
             "flower.chunk_bytes": 9000, "flower.reply_timeout": 45.0,
             "train.single_round.dino_steps": dino_steps, "train.checkpoint_every": every}
  config = settings.load_config(CONFIG, changes)
  dino = next(p for p in protocols.make_schedule(config.train, 2) if p.kind == "dino")
  with launch.LocalDeployment(CONFIG, changes, str(tmp_path / "flower"), 2,
                              jax_cache) as deployment, \
      concurrent.futures.ThreadPoolExecutor(1) as pool:
    for k in range(2):
      os.makedirs(deployment.client_dir(k))
      with open(os.path.join(deployment.client_dir(k), "permutation_secret"), "w") as f:
        f.write(str(single_round.simulated_secret(config.seed, k)))
    deployment.start_superlink()
    crash_in = {0: "local", 1: "finetune"}
    for k in range(2):
      _start_crashing_client(deployment, k, crash_in[k])
    exits, stopping = [], threading.Event()
    restarter = threading.Thread(target=_restart_when_dead,
                                 args=(deployment, crash_in, stopping, exits))
    restarter.start()
    deployment.start_run()
    reference = pool.submit(_in_process, config, str(tmp_path / "in_process"))  # Meanwhile.
    checkpoints = os.path.join(deployment.server_dir, "checkpoints")
    distilling = lambda: os.path.isdir(checkpoints) and any(
        name.isdigit() and dino.start < int(name) < dino.end for name in os.listdir(checkpoints))
    wait_until(distilling, RUN_TIMEOUT, "a checkpoint during self-distillation", deployment)
    deployment.stop_superlink(kill=True)
    launch.stop(deployment.run_process)  # `flwr run` lost its SuperLink.
    deployment.start_superlink()
    deployment.start_run()
    try:
      code = deployment.wait_run(RUN_TIMEOUT)
    finally:
      stopping.set()
      restarter.join()
    with open(deployment.log("run")) as f:
      assert code == 0, f.read()[-3000:]
    assert sorted(exits) == [(0, CRASH_CODE), (1, CRASH_CODE)], exits
    resumed = events(deployment, "resumed_server")
    assert len(resumed) == 1 and dino.start < resumed[0]["step"] < dino.end, resumed
    assert len(events(deployment, "upload")) == 1  # Asked once, before the restart.
    assert sorted(e["client"] for e in events(deployment, "client_finished")) == [0, 1]
    assert events(deployment, "finished")
    wire_rows = read_jsonl(os.path.join(deployment.server_dir, "wire.jsonl"))
    up = [r for r in wire_rows if r["step"] == "upload"]
    down = [r for r in wire_rows if r["step"] == "download"]
    assert sorted(r["client"] for r in up) == sorted(r["client"] for r in down) == [0, 1]
    for row in up:
      assert row["up_payload"] == row["up_predicted"] and row["up_messages"] >= 4, row
    for row in down:
      assert row["down_payload"] == row["down_predicted"] and row["down_messages"] == 3, row
    expected, expected_rows = reference.result()
    rows = client_results.gather([deployment.client_dir(k) for k in range(2)])
    assert [(r["task"], r["eval_set"], r["phase"]) for r in rows] == [
        (r["task"], r["eval_set"], r["phase"]) for r in expected_rows]
    for row, want in zip(rows, expected_rows):
      for metric in ("input/psnr", "output/psnr", "output/ssim"):
        assert abs(row[metric] - want[metric]) < 1e-3, (metric, row, want)
    table = client_results.write([deployment.client_dir(k) for k in range(2)], str(tmp_path))
    assert all(f"| {r['task']} | {r['eval_set']} |" in table for r in expected_rows), table
    server = _flower_server(config, deployment.server_dir)
    assert int(server["step"]) == dino.end
    _assert_close(server["server"]["body"], expected["server"]["body"], "body")
    _assert_close(server["server"]["dino"], expected["server"]["dino"], "dino")
    for k in range(2):
      worker = SingleRoundWorker(config, k, deployment.client_dir(k))
      want = jax.tree_util.tree_map(lambda a, k=k: a[k], expected["clients"])
      for part in ("head", "tail", "opt"):
        _assert_close(worker.state[part], want[part], f"client {k} {part}")
      _assert_close(worker.state["body"], expected["server"]["body"], f"client {k} body")
      worker.checkpoints.close()


@pytest.mark.slow
def test_a_client_that_never_uploads_is_left_out_when_the_policy_says_proceed(
    data_dir, jax_cache, tmp_path):
  """Client 1 joins, then dies when asked for its token sets and never comes back; with
  `flower.on_client_failure=proceed` the server distils on client 0's upload alone, says so
  in one line, sends the body to client 0 only, and the run ends with client 0's scores."""
  changes = {"data.data_dir": data_dir, "clients": ["denoising", "deraining"],
             "flower.on_client_failure": "proceed", "flower.reply_timeout": 20.0}
  with launch.LocalDeployment(CONFIG, changes, str(tmp_path / "flower"), 2,
                              jax_cache) as deployment:
    deployment.start_superlink()
    deployment.start_client(0)
    _start_crashing_client(deployment, 1, "upload")
    code = deployment.start_run().wait(RUN_TIMEOUT)
    with open(deployment.log("run")) as f:
      assert code == 0, f.read()[-3000:]
    assert deployment.clients[1].poll() == CRASH_CODE
    failed = events(deployment, "client_failed")
    assert [(e["step"], e["client"]) for e in failed] == [("upload", 1)], failed
    no_upload = events(deployment, "no_upload")
    assert len(no_upload) == 1 and no_upload[0]["clients"] == [1], no_upload
    assert "proceeds on the token sets of clients [0]" in no_upload[0]["message"]
    assert events(deployment, "download")[0]["clients"] == [0]
    assert [e["client"] for e in events(deployment, "client_finished")] == [0]
    rows = client_results.gather([deployment.client_dir(k) for k in range(2)])
    assert {r["task"] for r in rows} == {"denoising"} and rows, rows
