"""Reading a control request off a control ROUTER: moved to ``bus.requests`` (the factory's
control socket reads requests too, and may import only ``bus`` and ``cells``)."""

from bus.requests import MAX_CMD_ID, Refusal, read_request

__all__ = ["MAX_CMD_ID", "Refusal", "read_request"]
