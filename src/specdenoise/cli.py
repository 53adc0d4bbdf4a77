"""The ``specdenoise`` command line: one verb per stage, each a thin call into library code.

Each verb lives in ``specdenoise/commands/<verb>.py`` with ``HELP``, ``add_arguments(parser)``
(argparse only, cheap imports) and ``run(args) -> int`` (heavy imports inside). Library code
raises; this module alone turns errors into one line on stderr and an exit code.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from typing import Sequence

from . import __version__

VERBS = ("synth", "preprocess", "pack", "train", "tune", "evaluate", "denoise", "demo", "serve", "live", "export")

EXIT_USAGE = 2
EXIT_FAILURE = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, timeout, a container stop) raised like Ctrl-C, so every command cleans up
    its temp files and partial folders the same way for both."""


def _on_sigterm(signum, frame):
    raise Terminated()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specdenoise",
        description="Remove background noise from speech with CNN / U-Net spectrogram denoisers.",
    )
    parser.add_argument("--version", action="version", version=f"specdenoise {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for verb in VERBS:
        module = importlib.import_module(f"specdenoise.commands.{verb}")
        p = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return EXIT_USAGE
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args._module.run(args) or 0)
    except Terminated:
        print("specdenoise: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("specdenoise: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one place errors become exit codes
        if getattr(args, "debug", False):
            raise
        from .errors import SpecdenoiseError, first_line, shown

        kind = "error" if isinstance(exc, SpecdenoiseError) else f"error ({type(exc).__name__})"
        if isinstance(exc, SpecdenoiseError):  # ours are one line: a newline can only come from a file name
            message = shown(str(exc).strip()) or type(exc).__name__
        else:
            message = first_line(exc)
        print(f"specdenoise {args.verb}: {kind}: {message}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
