"""One exception type for bad user input.

Entry points catch it and print a single `error: ...` line instead of a
traceback; everything else is a bug and keeps its traceback.
"""
import sys


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it."""


def run_cli(main, argv=None):
    """Run `main(argv)`; turn a UserError into a one-line message and exit code 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
