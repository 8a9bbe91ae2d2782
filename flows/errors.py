"""The exception users see: one line that says what is wrong and what to do."""


class SeqcastError(RuntimeError):
    """A problem the user can fix (bad file, unknown series, missing model, bad setting)."""
