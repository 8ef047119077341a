"""The errors sashie raises on purpose: each carries a one-line message meant for the user."""


class SashieError(Exception):
    """Wrong use or bad input that stops an operation; the message is shown as one line."""


class NotFound(SashieError):
    """Something asked for by its id (an item, a model version) that the library lacks."""


class BadInput(SashieError):
    """One input (an image, a manifest, a URL) that cannot be used; a run skips it and goes on."""


class Damaged(SashieError):
    """A file of the library is damaged or tampered with: what needs it stops with one line;
    what does not keeps working. `sashie check` lists every such file and repairs what it can."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part} is damaged ({reason}); `sashie check` lists what is damaged")
        self.part = part
        self.reason = reason


class ShardDown(SashieError):
    """A shard of a sharded search (sashie/search/shards.py) did not answer."""
