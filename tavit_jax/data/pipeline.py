"""Grain pipelines: per-client training batches and whole-image evaluation sets.

Training (per client): the client's shard of its task's training split → shuffled each
epoch → per image, `patches_per_image` random crops degraded on the fly and augmented
(rotation by k·90°, flips, identical for input and target) → batches of numpy arrays in
[-1, 1], NHWC. Every random draw comes from grain's per-element generator, so a batch is
a pure function of (seed, step) and the iterator state checkpoints and resumes exactly.

Evaluation: whole images in dataset order, each degraded with a generator seeded by the
task, the eval set and the image's name, so results do not depend on order or workers.
"""

import dataclasses
import zlib
from typing import Iterator, Optional, Sequence

from absl import flags
import grain
import numpy as np

from tavit_jax.data import datasets, degradations, images
from tavit_jax.data.tasks import EvalSet, task_data, TaskData
from tavit_jax.errors import TavitError
from tavit_jax.roster import assign_clients, ClientData


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
  """Symmetric padding at the bottom/right so both sides are at least `size`."""
  pad_h, pad_w = max(size - array.shape[0], 0), max(size - array.shape[1], 0)
  if pad_h or pad_w:
    array = np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
  return array


def _augment(pair: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Random rotation by k·90° and flips of a stacked (2, P, P, 3) input/target pair."""
  pair = np.rot90(pair, k=rng.integers(4), axes=(1, 2))
  if rng.random() < 0.5:
    pair = pair[:, :, ::-1]
  if rng.random() < 0.5:
    pair = pair[:, ::-1]
  return pair


@dataclasses.dataclass(frozen=True)
class PatchSampler:
  """Random degraded and augmented patches of one decoded dataset element.

  Clean sources: crop patch + margin, degrade, keep the centre (the margin gives blur and
  rain the context they have in the full image). Paired sources: crop both at one place.
  """

  degradation: degradations.Degradation
  patch_size: int
  patches_per_image: int
  image_key: str = "image"

  def __call__(self, element: dict, rng: np.random.Generator) -> np.ndarray:
    size, margin = self.patch_size, self.degradation.margin
    paired = "target" in element
    if paired:
      source = _pad_to(np.concatenate([element["input"], element["target"]], axis=-1), size)
    else:
      source = _pad_to(element[self.image_key], size + 2 * margin)
      size = size + 2 * margin
    patches = []
    for _ in range(self.patches_per_image):
      y = rng.integers(source.shape[0] - size + 1)
      x = rng.integers(source.shape[1] - size + 1)
      crop = images.to_unit(source[y:y + size, x:x + size])
      if paired:
        pair = np.stack([crop[..., :3], crop[..., 3:]])
      else:
        degraded = self.degradation(crop, rng)
        inner = slice(margin, size - margin)
        pair = np.stack([degraded[inner, inner], crop[inner, inner]])
      patches.append(_augment(pair, rng))
    return np.stack(patches) * 2.0 - 1.0  # (K, 2, P, P, 3) in [-1, 1].


class _SplitPatches(grain.experimental.FlatMapTransform):
  """(K, 2, P, P, 3) → K elements {'input', 'target'} of (P, P, 3)."""

  def __init__(self, patches_per_image: int):
    self.max_fan_out = patches_per_image

  def flat_map(self, patches):
    return [{"input": p[0], "target": p[1]} for p in patches]


def client_images(client: ClientData, suite: str = "default", data_dir: Optional[str] = None,
                  train_images: int = 0) -> grain.MapDataset:
  """The client's shard of its task's training split (decoded elements, not yet degraded).

  `train_images` > 0 keeps only the split's first that many images (the data-limited
  clients of EXPERIMENTS.md), shared among the task's clients as the whole split is, so
  Base (one client) and Single/Multi (two) hold the same images per task.
  """
  train_split = task_data(client.task, suite).train
  source = grain.MapDataset.source(datasets.open_split(train_split, data_dir))
  if train_images:
    if train_images > len(source):
      raise TavitError(f"data.train_images={train_images}, but {train_split} has only "
                       f"{len(source)} images")
    source = source[:train_images]
  shard = source[client.shard_index::client.num_shards]
  if len(shard) == 0:
    raise TavitError(f"client {client.name}: shard {client.shard_index} of {client.num_shards} "
                     f"of {train_split} is empty (more clients than images)")
  return shard


def train_dataset(
    client: ClientData,
    *,
    suite: str = "default",
    batch_size: int = 8,
    patch_size: int = 64,
    patches_per_image: int = 4,
    seed: int = 0,
    read_threads: int = 1,
    data_dir: Optional[str] = None,
    train_images: int = 0,
) -> grain.IterDataset:
  """An endless dataset of {'input', 'target'} batches (B, P, P, 3) float32 in [-1, 1].

  `read_threads` threads decode and degrade images ahead of time. They keep the order, so
  batches do not depend on their number. (Grain's default of 16 threads per dataset
  thrashes a small machine once several clients each have one.)
  """
  data = task_data(client.task, suite)
  shard = client_images(client, suite, data_dir, train_images)
  client_seed = _stable_seed(seed, client.name)
  sampler = PatchSampler(degradations.make(data.train_degradation[0], **data.train_degradation[1]),
                         patch_size, patches_per_image, data.train.image_key)
  images_ds = shard.shuffle(seed=client_seed).repeat().random_map(sampler, seed=client_seed)
  read_options = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=4 * max(read_threads, 1))
  patches = grain.experimental.FlatMapIterDataset(
      images_ds.to_iter_dataset(read_options), _SplitPatches(patches_per_image))
  return patches.batch(batch_size, drop_remainder=True)


def clients_dataset(clients: Sequence[ClientData], *, workers: int = 0, **kwargs) -> grain.IterDataset:
  """All clients' batches stacked on a leading client axis: {'input', 'target'} (K, B, P, P, 3).

  `workers` > 0 prepares batches in that many processes (grain multiprocessing), for
  machines with many cores. Grain then gives each worker its own slice of the data, so the
  batches differ from those of another worker count (still deterministic for a given one,
  and the iterator state resumes only with the same count).
  """
  zipped = grain.experimental.ZipIterDataset([train_dataset(c, **kwargs) for c in clients])
  stacked = zipped.map(lambda batches: {k: np.stack([b[k] for b in batches]) for k in ("input", "target")})
  if workers:
    if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags; scripts may not use absl.
      flags.FLAGS.mark_as_parsed()
    stacked = stacked.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return stacked


def clients_dataset_from_config(config, only: Optional[Sequence[int]] = None) -> grain.IterDataset:
  """`clients_dataset` for `config.clients` (those at indices `only`, default all) and
  `config.data` (see configs/default.py)."""
  data = config.data
  clients = assign_clients(list(config.clients))
  if only is not None:
    clients = [clients[k] for k in only]
  return clients_dataset(
      clients, suite=data.suite, batch_size=data.batch_size, patch_size=data.patch_size,
      patches_per_image=data.patches_per_image, seed=config.seed, read_threads=data.read_threads,
      workers=data.workers, data_dir=data.data_dir, train_images=data.get("train_images", 0))


def _stable_seed(*parts) -> int:
  """A seed from strings and ints that is the same in every process and Python run."""
  return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def eval_images(task: str, eval_name: str, *, suite: str = "default", seed: int = 0,
                data_dir: Optional[str] = None, eval_split: str = "test") -> Iterator[dict]:
  """Whole test (or validation) images of one eval set: {'name', 'input', 'target'} with
  uint8 (H, W, 3) arrays.

  Degraded inputs are quantised to 8 bits, like stored degraded test images.
  """
  data: TaskData = task_data(task, suite, eval_split)
  if eval_name not in data.evals:
    raise TavitError(f"task {task} has no eval set '{eval_name}'; it has {', '.join(data.evals)}")
  return eval_set_images(data.evals[eval_name], task, eval_name, seed=seed, data_dir=data_dir)


def eval_set_images(eval_set: EvalSet, task: str, eval_name: str, *, seed: int = 0,
                    data_dir: Optional[str] = None) -> Iterator[dict]:
  """`eval_images` of any eval set, e.g. one made for a dataset outside the suites.

  Each clean image is degraded with a generator seeded by (seed, task, eval_name, image
  name), so the same set named the same way gives the same inputs as in training.
  """
  degradation = degradations.make(eval_set.degradation[0], **eval_set.degradation[1])
  source = datasets.open_split(eval_set.split, data_dir)
  for index in range(len(source)):
    element = source[index]
    name = element["name"].decode() if isinstance(element["name"], bytes) else str(element["name"])
    if "target" in element:
      yield {"name": name, "input": element["input"], "target": element["target"]}
      continue
    clean = element[eval_set.split.image_key]
    rng = np.random.default_rng(_stable_seed(seed, task, eval_name, name))
    degraded = degradation(images.to_unit(clean), rng)
    yield {"name": name, "input": images.to_uint8(degraded), "target": clean}
