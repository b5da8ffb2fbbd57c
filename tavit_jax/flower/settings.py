"""The experiment config as both sides of a deployment read it, and the Flower settings.

Server and clients load the same config file on their own machines; a fingerprint of the
fields both sides depend on lets the server refuse a client that loaded another one.
Imports no JAX (the ClientApp process loads this package).
"""

import hashlib
import json

import ml_collections

from tavit_jax import config_files
from tavit_jax.errors import TavitError

# Fields that must agree between the server and every client.
SHARED_FIELDS = ("seed", "clients", "model", "data.patch_size", "data.batch_size", "train.mode",
                 "train.cycles", "train.client_phase_steps", "train.server_phase_steps",
                 "train.unify_every")
FAILURE_POLICIES = ("wait", "proceed")


def flower_defaults() -> ml_collections.ConfigDict:
  """`config.flower` of configs/flower_tiny.py; configs without that section get these."""
  return ml_collections.ConfigDict(dict(
      reply_timeout=60.0,  # Seconds a client has to answer one message before it is reported.
      on_client_failure="wait",  # wait: until it is back (max_wait); proceed: step without it.
      max_wait=600.0,  # Seconds to wait for a failed client before the run stops.
      start_timeout=300.0,  # Seconds to wait for every client to join at the start.
      poll_interval=0.05,  # Seconds between two pulls of replies from the SuperLink.
      # Single round: most array bytes per message (under gRPC's 2 GiB; chunks.py says why).
      chunk_bytes=256 * 2**20,
  ))


def check(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` if a deployment can run it; a config without a `flower` section gets the defaults."""
  if "flower" not in config:
    with config.unlocked():
      config.flower = flower_defaults()
  if config.flower.on_client_failure not in FAILURE_POLICIES:
    raise TavitError(f"flower.on_client_failure must be one of {FAILURE_POLICIES}, "
                     f"not {config.flower.on_client_failure!r}")
  if config.train.wire_dtype != "float32":
    raise TavitError(f"tavit-flower sends float32 features and gradients; train.wire_dtype="
                     f"{config.train.wire_dtype!r} is simulated by tavit-train only")
  simulated_only = {"data.train_images": 0, "data.eval_split": "test", "train.body_from": None}
  for dotted, default in simulated_only.items():
    section, name = dotted.split(".")
    value = config[section].get(name, default)
    if value not in (default, ""):
      raise TavitError(f"{dotted}={value!r} is a tavit-train study option (a deployment's "
                       f"clients hold all their images, start from the body at its "
                       f"initialisation and score the test images); leave it out for "
                       f"tavit-flower")
  from tavit_jax.training import protocols  # pylint: disable=g-import-not-at-top  # JAX.
  if not protocols.select(config.train).over_flower:
    raise TavitError("tavit-flower deploys alternating TAViT (permuted and punched tokens "
                     "included) and the single round; train.token_mix, simultaneous and the "
                     "baselines run in tavit-train only")
  return config


def load_config(spec: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """A locked, checked config from 'path/to/config.py[:arg]' plus flat overrides
  {'train.cycles': 1}: what the command line gave to the process that started this one."""
  config = config_files.load(spec)
  config.unlock()
  if "flower" not in config:
    config.flower = flower_defaults()
  try:
    config.update_from_flattened_dict(dict(overrides or {}))
  except KeyError as e:
    raise TavitError(f"config override names no config field: {e}") from e
  config.lock()
  return check(config)


def parse_overrides(text: str) -> dict:
  """Overrides as JSON text (how run and node configs carry them); '' is none."""
  return json.loads(text) if text else {}


def fingerprint(config: ml_collections.ConfigDict) -> str:
  values = {dotted: config_files.lookup(config, dotted) for dotted in SHARED_FIELDS}
  if "single_round" in config.train:  # Its phase lengths (earlier fingerprints unchanged).
    values["train.single_round"] = config_files.lookup(config, "train.single_round")
  return hashlib.sha256(json.dumps(values, sort_keys=True, default=list).encode()).hexdigest()[:16]
