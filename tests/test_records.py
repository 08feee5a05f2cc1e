"""kvd.records: one JSON file per record, read once and then served from memory."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvd.records import Records


@dataclass(frozen=True, kw_only=True)
class Thing:
    uid: str
    size: int = 0


def test_what_is_put_is_on_disk_and_a_new_reader_finds_it(tmp_path: Path) -> None:
    records = Records(tmp_path / "things", Thing)
    records.put(Thing(uid="b", size=2))
    records.put(Thing(uid="a", size=1))
    records.put(Thing(uid="b", size=3))

    assert json.loads((tmp_path / "things" / "b.json").read_text()) == {"uid": "b", "size": 3}
    assert not list((tmp_path / "things").glob("*.tmp"))
    assert records.get("b") == Thing(uid="b", size=3)
    assert records.all() == [Thing(uid="a", size=1), Thing(uid="b", size=3)]
    # a restarted daemon: a new reader of the same directory
    assert Records(tmp_path / "things", Thing).all() == records.all()

    records.remove("a")
    records.remove("never")
    assert records.get("a") is None
    assert sorted(p.name for p in (tmp_path / "things").iterdir()) == ["b.json"]
    assert Records(tmp_path / "things", Thing).all() == [Thing(uid="b", size=3)]


def test_lookups_after_the_first_read_no_file(tmp_path: Path) -> None:
    records = Records(tmp_path, Thing)
    records.put(Thing(uid="a", size=1))
    assert Records(tmp_path, Thing).get("a") == Thing(uid="a", size=1)

    reader = Records(tmp_path, Thing)
    assert reader.all() == [Thing(uid="a", size=1)]
    (tmp_path / "a.json").unlink()  # behind its back: the daemon's own records are its own
    (tmp_path / "z.json").write_text(json.dumps({"uid": "z"}))
    assert reader.get("a") == Thing(uid="a", size=1)
    assert reader.get("z") is None


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("torn.json", '{"uid": "torn", "si'),  # a hand edit; renames never leave one
        ("nouid.json", '{"size": 1}'),  # a field missing
        ("other.json", '{"uid": "elsewhere"}'),  # filed under another uid
    ],
)
def test_a_file_that_is_not_a_record_is_skipped(tmp_path: Path, name: str, text: str) -> None:
    Records(tmp_path, Thing).put(Thing(uid="good", size=1))
    (tmp_path / name).write_text(text)
    records = Records(tmp_path, Thing)
    assert records.all() == [Thing(uid="good", size=1)]
    assert records.get(Path(name).stem) is None


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    """A record written by a newer daemon, read by an older one."""
    (tmp_path / "a.json").write_text(json.dumps({"uid": "a", "size": 4, "later": True}))
    assert Records(tmp_path, Thing).get("a") == Thing(uid="a", size=4)


def test_concurrent_writers_leave_memory_and_disk_alike(tmp_path: Path) -> None:
    records = Records(tmp_path, Thing)

    def write(worker: int) -> None:
        for i in range(200):
            uid = f"t{i % 10}"
            if i % 7 == worker % 7:
                records.remove(uid)
            else:
                records.put(Thing(uid=uid, size=worker * 1000 + i))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert records.all() == Records(tmp_path, Thing).all()
