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


def _flag_error_message(error: Exception) -> str:
  """One line from absl / ml_collections flag errors (a misspelt config key is a KeyError)."""
  if isinstance(error, (KeyError, AttributeError)) and error.args:
    inner = error.args[0]
    if isinstance(inner, KeyError) and inner.args:
      inner = inner.args[0]
    key, _, hint = str(inner).partition("\n")
    return f"config has no key {key}" + (f" ({hint})" if hint else "")
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[-1] if isinstance(error, OSError) else " ".join(lines)


def run_app(main) -> None:
  """`absl.app.run(main)` where flag and config-override mistakes and `TavitError`s print
  one line and exit 2 instead of a traceback."""
  from absl import app, flags, logging  # pylint: disable=g-import-not-at-top

  def parse(argv):
    try:
      remaining = flags.FLAGS(argv)
      for name in flags.FLAGS:
        # A config file that failed to load raises on first attribute access: touch them all.
        hasattr(getattr(flags.FLAGS, name), "to_dict")
      if not flags.FLAGS["verbosity"].present:  # TFDS logs every dataset open at INFO.
        logging.set_verbosity(logging.WARNING)
      return remaining
    except (flags.Error, OSError, KeyError, AttributeError, ValueError, TypeError) as e:
      print(f"error: {_flag_error_message(e)}", file=sys.stderr)
      sys.exit(2)

  app.run(exit_on_user_error(main), flags_parser=parse)
