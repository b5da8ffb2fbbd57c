"""The design a clone gets is docs/design.md: no tracked file points to a specification
outside the repository, and every "docs/design.md §N" that a file cites exists."""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESIGN = "docs/design.md"
# Assembled from pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", r"\bSP" + r"EC\b", "SP" + r"EC\.md"]))
CITATION = re.compile(r"docs/design\.md\)?\s+((?:§\d+(?:\.\d+)?(?:\s*[-–]\s*\d+(?:\.\d+)?)?"
                      r"(?:,\s*)?)+)")


def tracked_texts():
  """(path, text) of every tracked file that is text (binary files are skipped)."""
  listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode()
  for path in filter(None, listing.split("\0")):
    full = os.path.join(ROOT, path)
    if not os.path.isfile(full):  # Deleted in the working tree, not yet committed.
      continue
    with open(full, "rb") as f:
      data = f.read()
    if b"\0" not in data:
      yield path, data.decode("utf-8", errors="replace")


def test_nothing_refers_to_a_specification_outside_the_repository():
  hits = [f"{path}:{n}: {line.strip()}" for path, text in tracked_texts()
          for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
  assert not hits, f"cite a section of {DESIGN} instead:\n" + "\n".join(hits)


def test_every_cited_design_section_exists():
  with open(os.path.join(ROOT, DESIGN), encoding="utf-8") as f:
    sections = set(re.findall(r"^#+ §(\d+(?:\.\d+)?) ", f.read(), re.MULTILINE))
  missing = [f"{path}: §{number}" for path, text in tracked_texts()
             for cited in CITATION.findall(text)
             for number in re.findall(r"\d+(?:\.\d+)?", cited) if number not in sections]
  assert not missing, f"sections not in {DESIGN}:\n" + "\n".join(missing)
