"""The project's own error type for problems the user fixes: a config value, a data file, a checkpoint path.

The entry points print these as one line (`error: ...`, full traceback with debug=true). Anything else, a
ValueError from torch or a bug of ours, shows its traceback: a real bug must not look like a user error.
`UserError` subclasses ValueError so that code catching ValueError around validation keeps working.
"""


def first_line(e: BaseException, default: str = "") -> str:
    """An exception's message cut to its first line (one-line errors, status.json), or ``default`` when empty."""
    text = str(e).strip()
    return text.splitlines()[0] if text else default


class UserError(ValueError):
    """A problem the user fixes on the command line, in a yaml, or in the data: the message says how."""


class NonFiniteError(RuntimeError):
    """Training diverged: too many non-finite steps, or weights that must not be saved."""


class Preempted(Exception):
    """A stop signal (SIGTERM, SIGINT, SIGUSR2) ended training after a step and a checkpoint: rerunning the same
    command continues (trainer.resume=auto). The process exits with 128 + the signal number, as the shell reports a
    process that the signal killed, but with the work saved and status.json saying `preempted`."""

    def __init__(self, signum: int, step: int, checkpoint: str | None, then=None) -> None:
        import signal

        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.then = then  # the signal's handler from before training (submitit's requeue): the entry calls it last
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        saved = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (none could be written)"
        super().__init__(f"stopped by {name} after global step {step}: {saved}; run the same command again "
                         "to continue")


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors that are the user's to fix, shown as one line by the entry points (full traceback with
    debug=true) and by a spawned child's parent: anything else (a ValueError from torch, a bug of ours) shows
    its traceback. ConfigError and BadExampleError are UserErrors."""
    from src.utils.atomic import OutputError

    return (UserError, FileNotFoundError, OutputError, NonFiniteError)

