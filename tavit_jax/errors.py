"""User-facing errors: one clear line, no traceback, nothing lost.

Command-line entry points catch `TavitError` and print its message; everything else
is a bug and keeps its traceback.
"""

import functools
import sys


class TavitError(Exception):
  """A mistake the user can fix (missing data, bad file, bad config)."""


class MissingDataError(TavitError):
  """A manual-download folder or a built dataset is not where it should be."""


class BadImageError(TavitError):
  """An image file that cannot be read or does not fit its pair; names the file."""


def exit_on_user_error(main):
  """Wraps a CLI `main` so that a `TavitError` prints one line and exits 2."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except TavitError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  return wrapped
