"""One exception type for bad user input.

Entry points catch it and print a single `error: ...` line instead of a
traceback; everything else is a bug and keeps its traceback.
"""
import sys


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it."""
    exit_code = 2


class StepFailed(UserError):
    """An optional step failed after the main result was published (run.py step 5)."""
    exit_code = 3


def run_cli(main, argv=None):
    """Run `main(argv)`; turn a UserError into a one-line message and its exit code (2, or 3
    when a later step failed after the result was published)."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
