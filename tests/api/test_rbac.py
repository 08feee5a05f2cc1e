"""kvd's shipped roles: the chart's file is the module's output; the roles are KubeVirt's."""

from __future__ import annotations

from pathlib import Path

import yaml

from kvd.api import kinds, rbac

CHART = Path(__file__).resolve().parents[2] / "charts" / "kvd" / "templates" / "rbac.yaml"


def test_the_charts_rbac_is_what_the_module_renders() -> None:
    assert CHART.read_text() == rbac.render(), "run `make crds`"


def _roles() -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["metadata"]["name"]: r for r in rbac.user_roles()}


def test_user_roles_aggregate_into_kubes_admin_edit_and_view() -> None:
    labels = {name: r["metadata"]["labels"] for name, r in _roles().items()}
    assert labels["kubevirt.io:admin"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert labels["kubevirt.io:edit"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert labels["kubevirt.io:view"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"


def _granted(role: dict) -> set[tuple[str, str, str]]:  # type: ignore[type-arg]
    return {
        (group, resource, verb)
        for r in role["rules"]
        for group in r["apiGroups"]
        for resource in r["resources"]
        for verb in r["verbs"]
    }


def test_viewers_read_every_kind_and_open_no_console() -> None:
    view = _granted(_roles()["kubevirt.io:view"])
    for kind in kinds.KINDS.values():
        assert {(kinds.GROUP, kind.plural, v) for v in ("get", "list", "watch")} <= view
    assert not {g for g, _, _ in view} - {kinds.GROUP}
    assert not {v for _, _, v in view} - {"get", "list", "watch"}


def test_datavolumes_are_cdis_roles_read_by_viewers_and_written_by_editors() -> None:
    roles = _roles()
    for role, aggregate in (("admin", "admin"), ("edit", "edit"), ("view", "view")):
        labels = roles[f"cdi.kubevirt.io:{role}"]["metadata"]["labels"]
        assert labels[f"rbac.authorization.k8s.io/aggregate-to-{aggregate}"] == "true"
    view, edit, admin = (_granted(roles[f"cdi.kubevirt.io:{r}"]) for r in ("view", "edit", "admin"))
    assert view == {("cdi.kubevirt.io", "datavolumes", v) for v in ("get", "list", "watch")}
    assert view < edit < admin
    assert ("cdi.kubevirt.io", "datavolumes", "create") in edit
    assert admin - edit == {("cdi.kubevirt.io", "datavolumes", "deletecollection")}
    # KubeVirt's own roles stay KubeVirt's
    for role in ("view", "edit", "admin"):
        assert {g for g, _, _ in _granted(roles[f"kubevirt.io:{role}"])} <= {
            kinds.GROUP,
            "subresources.kubevirt.io",
        }


def test_editors_open_consoles_and_only_admins_delete_collections() -> None:
    edit, admin = _granted(_roles()["kubevirt.io:edit"]), _granted(_roles()["kubevirt.io:admin"])
    console = ("subresources.kubevirt.io", "virtualmachineinstances/console", "get")
    assert console in edit and console in admin
    assert (kinds.GROUP, "virtualmachineinstances", "deletecollection") in admin - edit
    assert edit <= admin


def test_daemon_objects_bind_each_service_account_to_its_own_role() -> None:
    objects = rbac.daemon_objects("kvd")
    bindings = [o for o in objects if o["kind"].endswith("Binding")]
    for b in bindings:
        (subject,) = b["subjects"]
        assert subject == {
            "kind": "ServiceAccount",
            "name": b["roleRef"]["name"],
            "namespace": "kvd",
        }
    accounts = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
    assert accounts == {rbac.CONTROLLER, rbac.HANDLER}
    chart = list(yaml.safe_load_all(CHART.read_text()))
    assert {d["kind"] for d in chart} >= {"ServiceAccount", "ClusterRole", "RoleBinding"}
