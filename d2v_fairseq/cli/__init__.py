"""``d2v``: the package's one command, with subcommands (``d2v --help`` lists them).

Each subcommand parses its arguments and calls the library; none holds logic of its own.
A user's mistake (a missing or malformed file, a bad option) ends in one line on stderr that
names the file and what is wrong, with exit status 2; ``d2v --debug ...`` shows the traceback.
"""

import argparse
import logging
import sys
from typing import List, Optional

from ..environment import FAIRSEQ_INSTALL, fairseq_available
from . import ablate, data, demo, models, train

COMMANDS = (data, models, demo, ablate, train)


def build_parser() -> argparse.ArgumentParser:
    """The ``d2v`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="d2v", description="data2vec for speech, text and images, on fairseq.",
        epilog="fairseq-hydra-train and fairseq-generate take the package as common.user_dir / --user-dir; "
        "`d2v configs` prints where the example configs are installed.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def fail(message: str) -> int:
    """Prints ``d2v: error: MESSAGE`` (one line) and returns exit status 2."""
    print(f"d2v: error: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    """Runs ``d2v ARGV``; returns (and, as a console script, exits with) the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"] and argv[1:] not in (["-h"], ["--help"]):  # the rest is fairseq-hydra-train's
        return _run(lambda: train.run_train(argv[1:]), debug=False)
    args = build_parser().parse_args(argv)
    # force: fairseq's import already configured the root logger (at DEBUG)
    logging.basicConfig(level=getattr(args, "log_level", logging.INFO), stream=sys.stderr, force=True,
                        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    if getattr(args, "needs_fairseq", True) and not fairseq_available():
        return fail(f"fairseq is not installed: {FAIRSEQ_INSTALL}")
    return _run(lambda: args.func(args), args.debug)


def _run(call, debug: bool) -> int:
    """Calls ``call()``; a user's error becomes one line and exit status 2."""
    from ..modules.errors import InputError, first_lines

    try:
        result = call()
    except (InputError, FileNotFoundError, IsADirectoryError, PermissionError) as error:
        if debug:
            raise
        return fail(first_lines(error))
    except KeyboardInterrupt:
        return fail("interrupted")
    return result if isinstance(result, int) else 0


def console_main() -> None:
    """The ``d2v`` console script."""
    sys.exit(main())
