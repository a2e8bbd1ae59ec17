"""The one exception type a user can cause.

Every error a user can trigger (bad layer name, unit out of range, missing
file, bad dataset, wrong checkpoint) raises :class:`DGNError` with one clear
sentence naming the bad value and the valid ones. Flows catch it and exit
non-zero without a traceback.
"""


class DGNError(ValueError):
    """A user-caused error: one sentence, naming the bad value and what is valid."""
