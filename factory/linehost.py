"""A factory line on a host of its own: its cell runs here, its coordinator elsewhere.

``lightsout factory line FILE --line NAME --coordinator tcp://HOST:PORT --keys
DIR --out DIR`` runs the line's cell (``cells.launch.run_cell``: its world,
its supervisor and agents, as processes with ``--processes``, over its own
``--endpoint`` with the same keys) as ``factory.run`` runs a line on a thread,
with one difference: at each coordinator step its world's thread sends the
coordinator a report and waits for the line side (``factory.wire``), where the
thread would have waited at a barrier. A report unanswered for ``RESEND_S``
is sent again (the coordinator answers a step twice the same), so a
coordinator restarted from its journal is taken up where it was; one
unanswered for ``wait_s`` ends the line with that reason.

The line's run directory (``--out``) is its host's own: the full cell run. At
the end its files the factory needs (``factory.wire.SENT_FILES``) go to the
coordinator with the ``done``, so the hosts share no disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import zmq

from bus.errors import LightsoutError
from cells.faults import ScheduledFault
from cells.headless import write_chaos
from cells.launch import RunOptions, run_cell
from factory.coordinator import NS, step_times
from factory.run import BARRIER_S, chaos_note, line_cells, plan_line
from factory.schema import FactorySpec
from factory.wire import (
    SENT_FILES,
    MirrorGate,
    client_socket,
    encode,
    line_keys,
    read_answer,
    tcp_address,
)

RESEND_S = 2.0
"""Wall seconds a report waits for its answer before it is sent again."""


class CoordinatorLink:
    """A line host's DEALER to its coordinator: one report out, its answer back."""

    def __init__(
        self, address: str, keys: tuple[bytes, bytes, bytes], line: str, wait_s: float
    ) -> None:
        tcp_address("--coordinator", address)
        self.line, self.wait_s = line, wait_s
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sock = client_socket(self.ctx, keys)
        self.sock.connect(address)
        self.address = address
        self.resent = 0

    def exchange(self, msg: dict[str, Any], want: str) -> dict[str, Any]:
        """Send ``msg`` until its answer (``want``, for its step) comes back."""
        raw, k = encode(msg), msg["k"]
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            self.sock.send(raw)
            until = time.monotonic() + RESEND_S
            while (left := until - time.monotonic()) > 0:
                if not self.sock.poll(int(left * 1000) + 1):
                    break
                ans = read_answer(self.sock.recv())
                if isinstance(ans, str):
                    raise LightsoutError(f"line {self.line}: the coordinator sent {ans}")
                if ans["op"] == "refused":
                    why = str(ans.get("why", ""))[:300]
                    raise LightsoutError(f"line {self.line}: the coordinator refused: {why}")
                if ans["k"] == k and ans["op"] == want:
                    return ans
            self.resent += 1
        raise LightsoutError(
            f"line {self.line}: {self.address} did not answer step {k} in {self.wait_s:g} s"
        )

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def run_line_host(
    spec: FactorySpec,
    line: str,
    out: Path,
    *,
    coordinator: str,
    keys_dir: Path,
    seed: int,
    duration_s: float,
    processes: bool = False,
    endpoint: str | None = None,
    scenario: tuple[ScheduledFault, ...] = (),
    chaos: float = 0.0,
    wear: bool = False,
    guard_s: float = 10.0,
    wait_s: float = BARRIER_S,
) -> dict[str, Any]:
    """Run line ``line`` of ``spec`` here under the coordinator at ``coordinator``; return the
    line's KPIs. Its faults are planned as ``factory.run`` plans them (its seed is ``seed``
    plus its place in the factory file)."""
    names = [ln.name for ln in spec.lines]
    if line not in names:
        raise LightsoutError(
            f"--line {line[:80]}: not a line of {spec.source} ({', '.join(names)})"
        )
    i = names.index(line)
    ln = spec.lines[i]
    cell = line_cells(spec)[line]
    planned = plan_line(spec, i, scenario, chaos, duration_s, seed, wear)
    keys = line_keys(keys_dir, spec.name, line)
    out.mkdir(parents=True, exist_ok=False)
    if chaos:
        write_chaos(out, planned, chaos_note(spec, i, seed, chaos, wear))
    gate = MirrorGate({f.name: f.part for f in ln.cell.feeders})
    link = CoordinatorLink(coordinator, keys, line, wait_s)
    steps = step_times(duration_s)
    pending = list(steps)
    k = [0]

    def exchange() -> None:
        ans = link.exchange(gate.report("step", line, k[0]), "go")
        gate.side = dict(ans.get("side", {}))

    def watch(world: Any) -> None:
        while pending and world.t_ns >= pending[0]:
            pending.pop(0)
            k[0] += 1
            exchange()

    tcp = bool(endpoint and endpoint.startswith("tcp://"))
    opts = RunOptions(
        seed=seed + i,
        duration_s=duration_s,
        processes=processes,
        endpoint=endpoint,
        keys_dir=keys_dir if tcp else None,
        faults=planned.faults,
        guard_s=guard_s,
        feed_gate=gate,
        on_event=gate.hear,
        on_kpis=gate.take_kpis,
        horizon=lambda: pending[0] if pending else 1 << 62,
    )
    try:
        exchange()  # step 0: the side the coordinator gave before the first tick
        kpis = run_cell(cell, out, opts, watch=watch)
        if pending:
            raise LightsoutError(f"line {line} ended before the step at {pending[0] / NS:g} s")
        done = gate.report("done", line, len(steps) + 1)
        done["files"] = {
            name: (out / name).read_text(encoding="utf-8")
            for name in SENT_FILES
            if (out / name).is_file()
        }
        link.exchange(done, "end")
    finally:
        link.close()
    return kpis
