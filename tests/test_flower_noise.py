"""The f_H noise defence in the Flower client process: drawn from the client's own secret,
so the server cannot subtract it, and the same for a resent request of one step."""

import os

import jax
import numpy as np

from tavit_jax.flower import settings
from tavit_jax.flower.worker import ClientWorker

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      "flower_tiny.py")


def test_a_noised_client_sends_fresh_private_noise_that_a_resend_repeats(data_dir, tmp_path):
  config = settings.load_config(CONFIG, {
      "data.data_dir": data_dir, "model.pos_emb": "none", "model.feature_clip": 0.5,
      "model.feature_noise": 2.0})
  worker = ClientWorker(config, 0, str(tmp_path / "client"))
  key = np.asarray(jax.random.PRNGKey(3)).tolist()
  sent = lambda step: worker.forward({"step": step, "key": key, "phase": "client"}, {})[1]["f_h"]
  first, again, later = sent(0), sent(0), sent(1)
  np.testing.assert_array_equal(first, again)  # A resent request gets the same answer.
  rms = np.sqrt(np.mean(np.square(first), axis=-1))
  assert np.median(rms) > 0.9  # Noise of RMS 1.0 on tokens clipped to RMS 0.5.
  clean, _ = worker.model.head_apply(worker.state["head"], worker._batch(0)[0],  # pylint: disable=protected-access
                                     worker.model.timesteps(None, worker.batch_size))
  assert np.std(first - np.asarray(clean)) > 0.9  # The noise is on what is sent.
  assert not np.allclose(first, later)
  secret = tmp_path / "client" / "permutation_secret"
  assert os.stat(secret).st_mode & 0o077 == 0
  worker.checkpoints.close()
