"""Event logs of reference runs, kept to prove that a change of structure changed no behaviour.

Each ``*.jsonl.gz`` here is the ``events.jsonl`` of one run of the code as it
stood before the supervisor was restructured (same cell file, seed and
scenario as the test that compares with it). DESIGN principle 4 says the
same inputs give the same bytes, so a refactoring must leave these logs
exactly as they are. A change that is *meant* to change behaviour writes
them anew (``python -m tests.reference NAME RUN_DIR``) in its own commit,
saying why.
"""

from __future__ import annotations

import difflib
import gzip
from pathlib import Path

HERE = Path(__file__).resolve().parent


def reference(name: str) -> bytes:
    """The kept event log ``name`` (``assembly-seed1-120s``, ...), uncompressed."""
    return gzip.decompress((HERE / f"{name}.jsonl.gz").read_bytes())


def first_difference(name: str, run_dir: Path) -> str:
    """ "" if ``run_dir``'s event log is byte for byte the reference ``name``; else where it
    first differs, with a little context, for the assertion message."""
    want = reference(name)
    got = (run_dir / "events.jsonl").read_bytes()
    if got == want:
        return ""
    a, b = want.decode().splitlines(), got.decode().splitlines()
    at = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    diff = difflib.unified_diff(
        a[at : at + 3], b[at : at + 3], "reference", "this run", lineterm=""
    )
    return f"{name}: first difference at line {at + 1} of {len(a)}\n" + "\n".join(diff)


def keep(name: str, run_dir: Path) -> None:
    """Store ``run_dir``'s event log as the reference ``name`` (gzip with no timestamp)."""
    data = (run_dir / "events.jsonl").read_bytes()
    with (
        (HERE / f"{name}.jsonl.gz").open("wb") as fh,
        gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(data)
