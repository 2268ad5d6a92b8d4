"""The one exception type for a user's mistake: the CLI prints it on one line and exits 2."""


def show(value, limit=80):
    """repr(value) cut to `limit` characters, or its type where the user's __repr__ fails."""
    try:
        text = repr(value)
    except BaseException:  # noqa: B036 - a user object's __repr__
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def message_of(exc):
    """str(exc) on one line (a user's message with line breaks is joined with " / "), or a placeholder when the
    exception's own __str__ fails."""
    try:
        text = str(exc)
    except BaseException:  # noqa: B036 - a user exception's __str__
        return "(its message could not be read)"
    return " / ".join(line.strip() for line in text.splitlines() if line.strip()) if "\n" in text or "\r" in text \
        else text


class InputError(ValueError):
    """Bad input or a network that breaks the plug-in protocol. The message says what was received and expected."""
