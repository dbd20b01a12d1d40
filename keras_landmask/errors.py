"""The one exception type users see: a message that says what is wrong and what to do."""


class LandmaskError(Exception):
    """A problem the user can fix (missing data, bad flag, unreadable file).

    The CLIs print ``str(error)`` on one line and exit with status 2, without a traceback.
    """
