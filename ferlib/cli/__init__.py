"""Command line: `python -m ferlib info|faces|train|label|evaluate|predict|explain|snapshot|ship|average|ensemble|tune
…`.

User mistakes (FerError) print one `error: Expected …` line and exit with status 2; anything else is reported as an
internal error (its traceback with --debug). Each command imports what it needs inside its handler, so `--help` and a
mistake found early answer without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys

from ferlib.cli import data_commands, model_commands, train_commands, tune_commands
from ferlib.errors import FerError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ferlib", description="Facial emotion recognition on FER-2013.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (data_commands, train_commands, model_commands, tune_commands):
        module.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except FerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head` closed the pipe: no traceback, and no second error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # a path that cannot be read or written (a folder, a read-only place, a full disk)
        if error.filename:
            message = f"Expected a readable or writable path; received {error.filename!r} ({error.strerror or error})"
        else:
            message = f"Expected the operation to succeed; received {type(error).__name__}: {error}"
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: say so in one line, or show the traceback with --debug
        if arguments.debug:
            raise
        print(
            f"internal error: {type(error).__name__}: {error} (this is a bug in ferlib; run again with --debug for "
            "the traceback and report it)",
            file=sys.stderr,
        )
        return 1
