"""What every command shares: user mistakes are one `error:` line and exit status 2;
`--help` (or `-h`) prints what the command does and its own flags, and exits 0.

`run_app` runs an absl `main` (flags defined in the command's `main()`, so several commands
can share a process); `exit_on_user_error` wraps an argparse one. Everything that is not a
`TavitError` or a flag mistake is a bug and keeps its traceback.
"""

import functools
import os
import sys
import textwrap

from tavit_jax.errors import TavitError


def exit_on_user_error(main, user_errors: tuple = ()):
  """Wraps a CLI `main` so that a `TavitError` (or one of `user_errors`) prints one line and
  exits 2."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except (TavitError, *user_errors) as e:
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
  one line and exit 2 instead of a traceback, and `--help` is `print_help`'s."""
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

  if _help_requested(sys.argv):
    print_help(main)
    sys.exit(0)
  # Flag checks a command makes itself (which flags go together) raise flags.Error.
  app.run(exit_on_user_error(main, (flags.Error,)), flags_parser=parse)


_HELP_WORDS = ("--help", "-h", "-?", "--helpshort")  # --helpfull stays absl's.


def _help_requested(argv) -> bool:
  words = argv[1:argv.index("--")] if "--" in argv else argv[1:]
  return any(word in _HELP_WORDS for word in words)


def _default(flag) -> str:
  if flag.default is None or flag.default == "":
    return ""
  if isinstance(flag.default, bool):
    return str(flag.default).lower()
  if isinstance(flag.default, (list, tuple)):
    return ",".join(map(str, flag.default))
  return str(flag.default)


def _flag_help(flag) -> str:
  name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
  text = flag.help
  if type(flag).__module__.startswith("ml_collections"):  # config_flags.DEFINE_config_*
    text += f"; --{flag.name}.<key>=value overrides any field of it"
  default = _default(flag)
  text += f" (default: {default})" if default else ""
  return "\n".join(textwrap.wrap(f"{name}: {text}", 92, initial_indent="  ",
                                 subsequent_indent="      ", break_on_hyphens=False))


def _usage(word: str, needed, optional) -> str:
  return " ".join([word] + [f"--{name}" for name in needed] + [f"[--{name}]" for name in optional])


def print_help(main) -> None:
  """What `--help` prints: the command module's docstring, its commands (a module-level
  `COMMANDS` dict, as `subcommand` takes; each one's line is the docstring of the module's
  function of that name) and the flags tavit_jax defines for it, not absl's or JAX's."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  module = sys.modules[getattr(main, "func", main).__module__]  # main may be a partial.
  program = os.path.basename(sys.argv[0])
  if program.endswith(".py"):  # python -m tavit_jax.cli.<command>
    program = f"python -m {module.__spec__.name}"
  commands = getattr(module, "COMMANDS", {})
  summaries = {word: (getattr(getattr(module, word, None), "__doc__", None) or "").strip()
               .partition("\n")[0] for word in commands}
  chosen = next((word for word in sys.argv[1:] if word in commands), None)
  sections = [(module.__doc__ or program).strip()]
  if chosen:
    usage = f"{program} {_usage(chosen, *commands[chosen])}"
    sections.append(f"{usage}\n  {summaries[chosen]}" if summaries[chosen] else usage)
  elif commands:
    width = max(map(len, commands))
    sections.append(f"commands ({program} <command> --help for one):\n" + "\n".join(
        f"  {word:<{width}}  {summaries[word] or _usage('', *commands[word]).strip()}"
        for word in commands))
  # absl files the flags of a `python -m` __main__ module under sys.argv[0].
  own = sys.argv[0] if module.__name__ == "__main__" else module.__name__
  by_module = flags.FLAGS.flags_by_module_dict()
  defined = by_module.get(own, []) + by_module.get(__name__, [])  # + define_*_flags below.
  if chosen:
    needed, optional = commands[chosen]
    defined = [flag for flag in defined if flag.name in (*needed, *optional)]
  if defined:
    sections.append("flags:\n" + "\n".join(map(_flag_help, defined)))
  sections.append("--helpfull lists every flag, absl's included.")
  print("\n\n".join(sections))


def no_arguments(argv) -> None:
  """absl passes leftover words on: a command that takes none says which it did not expect."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise flags.Error(f"unexpected arguments: {' '.join(argv[1:])}")


def subcommand(program: str, argv, commands: dict) -> str:
  """The command word of `prog <command> --flags` once its flags are checked: `commands`
  maps each word to (flags it needs, flags it may take); any other flag of the program is
  refused."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) != 2 or argv[1] not in commands:
    raise flags.Error(f"give one command: {' | '.join(commands)} "
                      f"(got {' '.join(argv[1:]) or 'none'})")
  command = argv[1]
  required, optional = commands[command]
  missing = [f"--{name}" for name in required if flags.FLAGS[name].value is None]
  if missing:
    raise flags.Error(f"{program} {command} needs {', '.join(missing)}")
  others = {name for needed, allowed in commands.values() for name in needed + allowed}
  alien = sorted(f"--{name}" for name in others - set(required + optional)
                 if flags.FLAGS[name].present)
  if alien:
    raise flags.Error(f"{program} {command} takes no {', '.join(alien)}")
  return command


def define_model_flags() -> None:
  """--model, --client, --step: which trained network a command runs."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("model", None, "exported model folder (tavit-export), training workdir "
                      "or imported parameters folder")
  flags.DEFINE_string("client", None, "for a workdir: client name or task (its first client)")
  flags.DEFINE_integer("step", None, "for a workdir: checkpoint step (default: the latest)")


def define_tiling_flags() -> None:
  """--stride, --batch_size, --blend: how a whole image is cut into patches and put back."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_integer("stride", 16, "step between overlapping patches (paper: 16; larger is faster)")
  flags.DEFINE_integer("batch_size", 64, "patches per model call")
  flags.DEFINE_enum("blend", "uniform", ["uniform", "weighted"], "uniform: the paper's average "
                    "of overlapping patches; weighted: cross-faded, hides the patch grid")


def check_stride(stride: int, patch_size: int) -> None:
  if not 1 <= stride <= patch_size:
    raise TavitError(f"--stride must be in [1, {patch_size}] (the patch size), not {stride}")
