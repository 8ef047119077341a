"""The errors sashie raises on purpose: each carries a one-line message meant for the user."""


class SashieError(Exception):
    """Wrong use or bad input that stops an operation; the message is shown as one line."""


class NotFound(SashieError):
    """Something asked for by its id (an item, a model version) that the library lacks."""


class BadInput(SashieError):
    """One input (an image, a manifest, a URL) that cannot be used; a run skips it and goes on."""
