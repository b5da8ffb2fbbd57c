"""Orbax checkpoints of everything a resumed run needs: state (both sides' parameters and
optimizer states, step, RNG) and the data iterator's position."""

import os

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """Saves are synchronous, so a checkpoint on disk is always complete when `save` returns."""

  def __init__(self, directory: str, keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=False))

  def latest_step(self):
    return self._manager.latest_step()

  def save(self, step: int, state, data_state: dict) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)
    self._manager.wait_until_finished()

  def restore(self, step: int, like_state):
    """(state laid out like `like_state`, with its shardings; data iterator state)."""
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like_state)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
    return restored["state"], restored["data"]

  def close(self) -> None:
    self._manager.close()
