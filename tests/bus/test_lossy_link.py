"""A lossy link (the ``message_loss`` fault) on real sockets: what is lost, and who notices."""

from __future__ import annotations

import itertools
from typing import Any

import zmq

from bus.mailbox import Mailbox, lost_on_the_wire
from bus.messages import Bid, Count, Tick

_n = itertools.count()


def exchange(ctx: zmq.Context[Any], share: float) -> tuple[list[int], list[int], Mailbox, Mailbox]:
    """60 ticks of 10 messages each way, the link lossy for ticks 10 to 39.

    Returns the sequence numbers each side received (hub from the spoke, spoke
    from the hub) and the two mailboxes.
    """
    endpoint = f"inproc://lossy-{next(_n)}"
    hub = Mailbox(ctx, endpoint, "supervisor", hub=True, guard_s=2)
    spoke = Mailbox(ctx, endpoint, "R1", hub=False, guard_s=2)
    hub.setup()
    spoke.setup()
    got_hub: list[int] = []
    got_spoke: list[int] = []
    sent_hub: tuple[Count, ...] = ()
    sent_spoke: tuple[Count, ...] = ()
    try:
        for k in range(60):
            got_hub += [e.seq for e in hub.collect(Tick(k, k * 1000, sent_spoke, None))]
            got_spoke += [e.seq for e in spoke.collect(Tick(k, k * 1000, sent_hub, None))]
            if k == 10:
                hub.impair("R1", share, until_tick=40)
            for i in range(10):
                spoke.send("supervisor", Bid("op", "R1", i))
                if k > 0:  # the hub can address R1 once it has heard from it
                    hub.send("R1", Bid("op", "supervisor", i))
            sent_spoke = tuple(c for c in spoke.take_counts() if c.peer == "supervisor")
            sent_spoke = tuple(Count("R1", c.n) for c in sent_spoke)
            sent_hub = tuple(Count("supervisor", c.n) for c in hub.take_counts())
    finally:
        hub.close()
        spoke.close()
    return got_hub, got_spoke, hub, spoke


def test_a_lossy_link_loses_its_share_both_ways_and_both_ends_see_the_gaps(
    ctx: zmq.Context[Any],
) -> None:
    got_hub, got_spoke, hub, spoke = exchange(ctx, 0.3)
    lost_up = 590 - len(got_hub)  # the last tick's messages are never collected
    lost_down = 580 - len(got_spoke)
    assert 60 <= lost_up <= 120 and 60 <= lost_down <= 120  # about 0.3 x 300 each way
    assert hub.dropped == lost_up + lost_down
    assert hub.gaps == {"R1": lost_up}
    assert spoke.gaps == {"supervisor": lost_down}
    # nothing was waited for: a lost message is not promised to the receiver
    assert hub.missing == spoke.missing == 0
    # only messages the hub took in during its lossy ticks (11 to 39: sent in ticks 10 to 38)
    # went missing, and exactly those the hash says
    expected = {s for s in range(100, 390) if lost_on_the_wire("R1", "supervisor", s, 0.3)}
    assert set(range(590)) - set(got_hub) == expected


def test_the_same_messages_are_lost_every_time(ctx: zmq.Context[Any]) -> None:
    first = exchange(ctx, 0.5)[:2]
    assert exchange(ctx, 0.5)[:2] == first
