"""The runtime's user-facing failure, in a module of its own: the step runner and the engines it
starts (``runtime.spark``, which ``runtime.step`` imports for a script step) both raise it."""


class StepFailed(Exception):
    """A user-facing failure: the message says which step, which function, which input."""
