"""One exception type for bad user input.

Entry points catch it and print a single `error: ...` line instead of a
traceback; everything else is a bug and keeps its traceback.
"""
import argparse
import sys


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it."""
    exit_code = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are a UserError: one `error:` line and exit 2, like every other bad
    input (argparse's own prints a usage block first), raised to the caller of main()."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


class StepFailed(UserError):
    """An optional step failed after the main result was published (run.py step 5)."""
    exit_code = 3


class Terminated(BaseException):
    """SIGTERM (kill, a scheduler, paddle.distributed.launch stopping its workers), raised like
    Ctrl-C so that staging folders and locks are cleaned up on the way out."""


def _terminate(signum, frame):
    raise Terminated()


def catch_sigterm():
    """Turn SIGTERM into Terminated. Called again once Paddle is imported: its core installs a
    C-level SIGTERM handler that aborts with a 'FatalError: Termination signal' report."""
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():  # signal() works only there
        signal.signal(signal.SIGTERM, _terminate)


def run_cli(main, argv=None):
    """Run `main(argv)`; turn a UserError into a one-line message and its exit code (2, or 3
    when a later step failed after the result was published)."""
    catch_sigterm()
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("error: terminated", file=sys.stderr)
        sys.exit(143)
