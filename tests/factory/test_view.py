"""The factory view: the report, the live console and the control socket's ``status``, from
one real ``lightsout factory run --console --endpoint`` (two lines at events fidelity, a
worn screwdriver on L1 so a unit is scrapped and released again, a rush order coming in
at 30 s), asked for its status while it runs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import html
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bus.endpoints import Endpoints
from bus.enums import ControlCommand
from clients.cli import main
from clients.cli_factory import cmd_factory_status
from clients.console_factory import render_factory
from clients.control import ControlClient
from tests.factory.kit import events_factory, jsonl, kpis

HERE = Path(__file__).resolve().parent
ORDERS = ["--order", "retail:phone:6:100", "--order", "retail:phone:3:150:rush@30"]


@dataclasses.dataclass
class Run:
    out: Path
    view: dict[str, Any]
    """A ``status`` answer's view, taken while the factory ran."""
    printed: str
    """What ``lightsout factory status`` printed then."""
    screen: str
    """What the factory run printed (the console's last frame among it)."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("factory-view")
    ipc = tempfile.mkdtemp(prefix="lo-")
    os.chmod(ipc, 0o700)
    base = f"ipc://{ipc}"
    argv = ["factory", "run", str(events_factory(tmp)), "--duration", "120", *ORDERS]
    argv += ["--faults", f"L1={HERE / 'worn_tool.toml'}", "--endpoint", base, "--console"]
    argv += ["--runs-dir", str(tmp), "--name", "v"]
    asked: list[Any] = []

    def ask() -> None:
        """While the factory runs (``main`` wants the main thread): its status, twice."""
        try:
            for _ in range(3000):
                if sock.exists():
                    break
                time.sleep(0.01)
            with ControlClient(base, timeout_s=10) as client:
                asked.append(json.loads(client.request(ControlCommand.STATUS).data))
            printed = Console(record=True, width=200, file=io.StringIO())
            args = argparse.Namespace(
                endpoint=base, timeout=10.0, json=False, watch=False, key=None, server_key=None
            )
            assert cmd_factory_status(args, printed) == 0
            asked.append(printed.export_text())
        except BaseException as exc:
            asked.append(exc)

    sock = Path(Endpoints.from_base(base).control.removeprefix("ipc://"))
    th = threading.Thread(target=ask)
    th.start()
    screen = io.StringIO()
    try:
        with contextlib.redirect_stdout(screen):
            code = main(argv)
    finally:
        th.join(60)
        shutil.rmtree(ipc, ignore_errors=True)
    assert code == 0 and len(asked) == 2, asked
    yield Run(tmp / "v", asked[0], asked[1], screen.getvalue())


def cells_of(page: str, row_id: str) -> list[str]:
    """The text of every cell of the row with ``row_id``."""
    m = re.search(rf'<tr id="{re.escape(row_id)}">(.*?)</tr>', page)
    assert m, f"no row {row_id}"
    return [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", m.group(1))]


@pytest.mark.timeout(300)
def test_the_report_names_every_line_order_and_store_with_its_figures(run: Run) -> None:
    page = (run.out / "report.html").read_text()
    k = kpis(run.out)
    for name, ln in k["lines"].items():
        cell = kpis(run.out / "lines" / name)  # the line's own figures
        row = cells_of(page, f"line-{name}")
        assert row[0] == name and row[1] == ln["state"]
        assert row[4] == str(cell["units_completed"]) and row[5] == str(cell["units_scrapped"])
        assert row[6] == f"{cell['throughput_per_hour']:.1f}"
        assert row[7] == f"{cell['oee']['oee']:.1%}"
        assert f'<g id="units-{name}"' in page  # its curve in the picture
    assert cells_of(page, "line-L1")[5] != "0", "L1 scrapped a unit"
    events = jsonl(run.out / "events.jsonl")
    for oid, o in k["orders"].items():
        row = cells_of(page, f"order-{oid}")
        shipment = next(e for e in events if e["kind"] == "shipment" and e["order"] == oid)
        assert row[3] == str(o["quantity"]) and row[5] == str(o["quantity"])
        assert row[9] == f"{shipment['t_ns'] / 1e9:g} s" and row[10] == shipment["shipment"]
        assert row[11] == f"{shipment['lateness_s']:g} s"
        assert f'<g id="order-{oid}"' in page and f'<g id="shipped-{oid}"' in page
    assert cells_of(page, "order-O00001")[8] == "100 s"  # due as ordered
    assert cells_of(page, "order-O00002")[0] == "O00002 (rush)"
    for kind in ("frame", "battery", "board", "screen"):
        row = cells_of(page, f"store-inbound-{kind}")
        assert row[2] == str(k["stores"]["inbound"]["stock"][kind])
        assert row[4] == "200", "the reorder point of the factory file"
    shipped = sum(len(e["units"]) for e in events if e["kind"] == "shipment")
    assert cells_of(page, "store-finished")[6] == f"{shipped} shipped"
    assert 'id="fig-units"' in page and 'id="fig-orders"' in page
    assert main(["report", str(run.out)]) == 0  # an old run's report, the same way
    assert (run.out / "report.html").read_text() == page


@pytest.mark.timeout(300)
def test_status_answers_lines_orders_and_stores_while_it_runs(run: Run) -> None:
    view = run.view
    assert view["factory"] == "phones2" and 0 <= view["t_s"] < 120 and view["t_s"] % 5 == 0
    assert set(view["lines"]) == {"L1", "L2"} and set(view["stores"]) == {"inbound", "finished"}
    for ln in view["lines"].values():
        assert ln["state"] in ("working", "idle", "starved")
        assert ln["released"] >= ln["built"] >= 0 and ln["cell"] == "assembly"
    assert "O00001" in view["orders"] and view["orders_total"] >= 1
    o = view["orders"]["O00001"]
    assert (o["quantity"], o["due_s"], o["customer"]) == (6, 100.0, "retail")
    inbound = view["stores"]["inbound"]
    assert inbound["reorder_point"] == dict.fromkeys(("battery", "board", "frame", "screen"), 200)
    # ``lightsout factory status`` printed the same view's tables
    for word in ("lightsout factory", "phones2", "L1", "L2", "O00001", "inbound", "finished"):
        assert word in run.printed, word


@pytest.mark.timeout(300)
def test_the_console_renders_a_frame_of_a_real_runs_view(run: Run) -> None:
    screen = Console(record=True, width=160, file=io.StringIO())
    screen.print(render_factory(run.view))
    text = screen.export_text()
    assert f"sim {run.view['t_s']:.0f} s" in text
    for name, ln in run.view["lines"].items():
        assert re.search(rf"{name}\s+│\s+{ln['state']}", text), name
    for oid in run.view["orders"]:
        assert oid in text
    for kind in ("frame", "battery", "board", "screen"):
        assert re.search(rf"{kind}\s+│\s+{run.view['stores']['inbound']['stock'][kind]}\s", text)
    # the run's own console ended on its last frame: the run's end, every order shipped
    assert "lightsout factory" in run.screen and "sim 115 s" in run.screen
