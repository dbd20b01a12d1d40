"""What the runtime tells the user without stopping (a read-only gallery, an export without a verification
threshold): ``RuntimeNote`` warnings. The CLI prints each as one ``note:`` line on stderr; from Python they
are ordinary warnings (``warnings.simplefilter("error", RuntimeNote)`` makes them errors)."""


class RuntimeNote(UserWarning):
    """Something the user should know that does not stop the work; the message says what to do about it."""
