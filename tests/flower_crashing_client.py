"""A single-round client process that dies once, as a killed one would (exit code 70, no
clean-up), where $TAVIT_TEST_CRASH_IN says:
  local     right after its first local training step, before any checkpoint;
  finetune  right after its first fine-tuning step, which no checkpoint holds (the last
            one is the body's download), once the server has heard that the body arrived
            (its first status request: a crash before that would also redo the download);
  upload    when the server first asks for its token sets (it has joined, never uploads).
Started again, it resumes from what its workdir holds.

  TAVIT_TEST_CRASH_IN=local python tests/flower_crashing_client.py client --config=...
  (the flags of `tavit-flower client`)
"""

import os
import threading

from tavit_jax.cli import flower as cli
from tavit_jax.flower.single_round_client import SingleRoundWorker

CRASH_CODE = 70


class CrashingWorker(SingleRoundWorker):

  def __init__(self, config, index: int, workdir: str):
    super().__init__(config, index, workdir)
    self.crash_in = os.environ["TAVIT_TEST_CRASH_IN"]
    self.marker = os.path.join(workdir, "crashed_once")
    self.asked_status = threading.Event()
    step = self._client_step

    def crashing_step(*args):
      out = step(*args)
      if self.body_ready.is_set():
        if self.crash_in == "finetune" and not os.path.exists(self.marker):
          self.asked_status.wait()
        self._crash_once("finetune")
      else:
        self._crash_once("local")
      return out

    self._client_step = crashing_step

  def _crash_once(self, where: str) -> None:
    if where == self.crash_in and not os.path.exists(self.marker):
      open(self.marker, "w").close()
      os._exit(CRASH_CODE)  # pylint: disable=protected-access

  def status(self, config, arrays):
    self.asked_status.set()
    return super().status(config, arrays)

  def upload(self, config, arrays):
    self._crash_once("upload")
    return super().upload(config, arrays)


if __name__ == "__main__":
  cli.main(worker_class=CrashingWorker)
