"""Ownership after updates and applies: who gains, who loses, what conflicts, what is removed."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.local.apiserver.apply import shapes, typed, updater
from kvd.local.apiserver.apply.fieldpath import Set
from kvd.local.apiserver.apply.updater import Manager, Managers, Owned

CM = shapes.builtin("ConfigMap", "")
A = Manager("a", "Apply")
B = Manager("b", "Apply")
EDIT = Manager("kubectl-edit", "Update", "v1")
NOTHING = Set()


def owned(*paths: tuple[str, ...]) -> Owned:
    return Owned(Set.of(*paths), "v1", "2024-01-01T00:00:00Z")


def apply(
    managers: Managers, live: Any, config: dict[str, Any], who: Manager, *, force: bool = False
) -> tuple[Any, Managers]:
    return updater.apply(
        managers,
        live,
        config,
        CM,
        applier=who,
        api_version="v1",
        ignored=NOTHING,
        strip=NOTHING,
        force=force,
        now=lambda: "2024-01-02T00:00:00Z",
    )


def sets(managers: Managers) -> dict[str, list[tuple[str, ...]]]:
    return {m.name: sorted(o.fields.paths()) for m, o in managers.items()}


def test_update_moves_changed_fields_to_the_writer() -> None:
    managers = {A: owned(("f:data", "f:x"), ("f:data", "f:y"))}
    out = updater.update(
        managers,
        {"data": {"x": "1", "y": "2"}},
        {"data": {"x": "9", "y": "2"}},
        CM,
        writer=EDIT,
        api_version="v1",
        ignored=NOTHING,
        strip=NOTHING,
        now=lambda: "2024-01-02T00:00:00Z",
    )
    assert sets(out) == {"a": [("f:data", "f:y")], "kubectl-edit": [("f:data", "f:x")]}
    assert out[EDIT].time == "2024-01-02T00:00:00Z"


def test_update_that_changes_nothing_keeps_entries_and_times() -> None:
    managers = {EDIT: owned(("f:data", "f:x"))}
    obj = {"data": {"x": "1"}}
    out = updater.update(
        managers,
        obj,
        obj,
        CM,
        writer=EDIT,
        api_version="v1",
        ignored=NOTHING,
        strip=NOTHING,
        now=lambda: "later",
    )
    assert out[EDIT].time == "2024-01-01T00:00:00Z"


def test_removed_fields_leave_every_manager() -> None:
    managers = {A: owned(("f:data", "f:x"), ("f:data", "f:y"))}
    out = updater.update(
        managers,
        {"data": {"x": "1", "y": "2"}},
        {"data": {"y": "2"}},
        CM,
        writer=EDIT,
        api_version="v1",
        ignored=NOTHING,
        strip=NOTHING,
        now=lambda: "t",
    )
    assert sets(out) == {"a": [("f:data", "f:y")]}


@pytest.mark.parametrize(
    ("config", "conflicts"),
    [
        pytest.param({"data": {"x": "2"}}, [("a", ("f:data", "f:x"))], id="other-value-conflicts"),
        pytest.param({"data": {"x": "1"}}, [], id="same-value-shares"),
        pytest.param({"data": {"z": "3"}}, [], id="new-field-is-free"),
    ],
)
def test_apply_conflicts(config: dict[str, Any], conflicts: list[Any]) -> None:
    managers = {A: owned(("f:data", "f:x"))}
    live = {"data": {"x": "1"}}
    if conflicts:
        with pytest.raises(updater.Conflicts) as raised:
            apply(managers, live, config, B)
        assert [(m.name, p) for m, p in raised.value.conflicts] == conflicts
        merged, out = apply(managers, live, config, B, force=True)
        assert sets(out) == {"b": [("f:data", "f:x")]}, "forcing takes the field"
        assert merged == {"data": {"x": "2"}}
    else:
        _, out = apply(managers, live, config, B)
        assert ("f:data", "f:x") in sets(out)["a"]


def test_apply_removes_what_the_applier_dropped_unless_someone_owns_it() -> None:
    live = {"data": {"x": "1", "y": "2", "z": "3"}}
    managers = {A: owned(("f:data", "f:x"), ("f:data", "f:y")), B: owned(("f:data", "f:y"))}
    merged, out = apply(managers, live, {"data": {"z": "3"}}, A)
    assert merged == {"data": {"y": "2", "z": "3"}}
    assert sets(out) == {"a": [("f:data", "f:z")], "b": [("f:data", "f:y")]}


def test_apply_of_the_same_configuration_is_a_no_op() -> None:
    live = {"data": {"x": "1"}}
    managers = {A: owned(("f:data", "f:x"))}
    merged, out = apply(managers, live, {"data": {"x": "1"}}, A)
    assert merged is live
    assert out[A].time == "2024-01-01T00:00:00Z", "a no-op apply does not move the time"


def test_apply_creates_from_nothing() -> None:
    merged, out = apply({}, typed.MISSING, {"data": {"x": "1"}}, A)
    assert merged == {"data": {"x": "1"}}
    assert sets(out) == {"a": [("f:data", "f:x")]}


def test_ignored_fields_are_neither_owned_nor_conflicting() -> None:
    managers = {A: owned(("f:status", "f:phase"))}
    out = updater.apply(
        managers,
        {"status": {"phase": "x"}},
        {"status": {"phase": "y"}, "data": {"a": "1"}},
        CM,
        applier=B,
        api_version="v1",
        ignored=Set.of(("f:status",)),
        strip=NOTHING,
        force=False,
        now=lambda: "t",
    )[1]
    assert sets(out)["b"] == [("f:data", "f:a")]
