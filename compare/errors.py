"""The one exception type for a user's mistake: the CLI prints it on one line and exits 2."""


class InputError(ValueError):
    """Bad input or a network that breaks the plug-in protocol. The message says what was received and expected."""
