"""A daemon reads its own write back while the cache still shows the version it replaced."""

from __future__ import annotations

from typing import Any

from kvd.kube.ownwrites import OwnWrites


def obj(rv: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "a", "resourceVersion": rv}, "status": status}


def test_the_written_copy_stands_in_for_the_cache_it_replaced() -> None:
    own = OwnWrites()
    assert own.latest("ns/a", obj("1")) == obj("1")  # nothing written: the cache
    own.wrote("ns/a", replaced="1", result=obj("2", phase="Running"))
    assert own.latest("ns/a", obj("1")) == obj("2", phase="Running")  # stale cache
    assert own.latest("ns/b", obj("1")) == obj("1")  # other keys are untouched


def test_a_cache_past_the_write_wins_and_the_entry_goes() -> None:
    own = OwnWrites()
    own.wrote("ns/a", replaced="1", result=obj("2"))
    assert own.latest("ns/a", obj("3", phase="Failed")) == obj("3", phase="Failed")
    assert len(own) == 0
    assert own.latest("ns/a", obj("1")) == obj("1")  # forgotten: no old write comes back


def test_a_chain_of_writes_reads_the_last_and_a_deleted_object_is_forgotten() -> None:
    own = OwnWrites()
    own.wrote("ns/a", replaced="1", result=obj("2"))
    base = own.latest("ns/a", obj("1"))
    assert base is not None
    own.wrote("ns/a", replaced=base["metadata"]["resourceVersion"], result=obj("3"))
    assert own.latest("ns/a", obj("2")) == obj("3")
    assert own.latest("ns/a", None) is None
    assert len(own) == 0
