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


# The stop a signal asked for. Paddle's C++ code can swallow the exception a Python signal handler
# raises (seen during PTQ calibration: Ctrl-C or SIGTERM right after "[2/5]" was lost in about one
# run in three and the run published its result); check_stop() raises it again at the next step.
_requested = None


def _terminate(signum, frame):
    global _requested
    _requested = Terminated
    raise Terminated()


def _interrupt(signum, frame):
    global _requested
    _requested = KeyboardInterrupt
    raise KeyboardInterrupt()


def catch_sigterm():
    """Turn SIGTERM into Terminated and Ctrl-C into KeyboardInterrupt, both remembered for
    check_stop. Called again once Paddle is imported: its core installs a C-level SIGTERM handler
    that aborts with a 'FatalError: Termination signal' report."""
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():  # signal() works only there
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _interrupt)


def check_stop():
    """Raise the Ctrl-C or SIGTERM received earlier if a library swallowed its exception: called
    between steps and before a result is published, so an interrupted run never publishes."""
    if _requested is not None:
        raise _requested()


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
