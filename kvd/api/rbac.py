"""Who may do what with kvd: the ClusterRoles it ships, for its users and for its own daemons.

One source for the chart (`python -m kvd.api.rbac --out charts/kvd/templates`, run by `make crds`)
and for `kvd local up`, which applies the same objects. The chart's copy is a Helm template: the
namespace is the release's and the daemons' account names come from values
(`controller.serviceAccountName`, `handler.serviceAccountName`), written here as template
placeholders, so the rules themselves exist once.

- **Users**: KubeVirt's `kubevirt.io:admin|edit|view`, labelled to aggregate into Kubernetes'
  `admin`, `edit` and `view`, so a namespace admin or editor manages the VMs of their namespace
  and opens their consoles, and a viewer only reads. The rules are KubeVirt's
  (`pkg/virt-operator/resource/generate/rbac/cluster.go`) for the kinds and subresources kvd has.
  kvd also serves CDI's DataVolumes, so it ships CDI's `cdi.kubevirt.io:admin|edit|view` the
  same way (CDI's `pkg/operator/resources/cluster/rbac.go`), for the one kind kvd has of that
  group; without them only a cluster admin could create a DataVolume. CDI's `datavolumes/source`
  (the right to clone a namespace's claims) is left out: kvd clones only within the
  DataVolume's own namespace.
- **Daemons**: one ServiceAccount each, in kvd's namespace, with exactly the calls its code makes
  and nothing more. `tests/e2e/test_daemon_roles.py` derives those calls from the API server's
  audit log of an e2e run and fails both on a call the role does not grant and on a rule nothing
  used. The controller's Lease and its ConfigMap are in kvd's namespace, so those rules are a
  Role there, not cluster-wide; a name the code knows is pinned with `resourceNames`.
- **Launcher pods** call no API (DESIGN §2: the launcher never talks to Kubernetes): they run as
  their namespace's `default` ServiceAccount with `automountServiceAccountToken: false`, and no
  role grants them anything.
- **The local node** (`kvd local up` only) plays the kubelet and the scheduler; on a real cluster
  that is the kubelet's, authorized by kube's Node authorizer, so this role is not in the chart.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from kvd.api import datavolume, kinds

Json = dict[str, Any]
RBAC: Final = "rbac.authorization.k8s.io"
API_VERSION: Final = f"{RBAC}/v1"
SUBRESOURCES: Final = "subresources.kubevirt.io"
APP_LABEL: Final = "kubevirt.io"  # KubeVirt marks what it installs with this label, valued ""
CONTROLLER: Final = "kvd-controller"
HANDLER: Final = "kvd-handler"
LOCAL_NODE: Final = "kvd:local-node"
NODES_GROUP: Final = "system:nodes"
LEASE: Final = "kvd-controller"  # kvd/controller's leader-election Lease, in kvd's namespace
CONFIG_MAP: Final = "kvd-config"  # kvd/controller/clusterconfig.NAME
NAMESPACE_PLACEHOLDER: Final = "{{ .Release.Namespace }}"
CONTROLLER_PLACEHOLDER: Final = "{{ .Values.controller.serviceAccountName }}"
HANDLER_PLACEHOLDER: Final = "{{ .Values.handler.serviceAccountName }}"
ALL_VERBS: Final = ("get", "delete", "create", "update", "patch", "list", "watch")
READ: Final = ("get", "list", "watch")


def rule(
    groups: tuple[str, ...],
    resources: tuple[str, ...],
    verbs: tuple[str, ...],
    names: tuple[str, ...] = (),
) -> Json:
    out: Json = {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}
    if names:
        out["resourceNames"] = list(names)
    return out


PLURALS: Final = tuple(k.plural for k in kinds.KINDS.values())
CONSOLE: Final = ("virtualmachineinstances/console", "virtualmachineinstances/vnc")
VMI_ACTIONS: Final = ("virtualmachineinstances/pause", "virtualmachineinstances/unpause")
VM_ACTIONS: Final = ("virtualmachines/start", "virtualmachines/stop", "virtualmachines/restart")


def _user_rules(verbs: tuple[str, ...], *, operate: bool) -> list[Json]:
    rules = []
    if operate:
        rules += [
            rule((SUBRESOURCES,), CONSOLE, ("get",)),
            rule((SUBRESOURCES,), VMI_ACTIONS, ("update",)),
            rule((SUBRESOURCES,), VM_ACTIONS, ("update",)),
        ]
    return [*rules, rule((kinds.GROUP,), PLURALS, verbs)]


@dataclass(frozen=True)
class UserRole:
    name: str
    aggregate_to: str
    rules: tuple[Json, ...]


USER_ROLES: Final = (
    UserRole(
        "kubevirt.io:admin",
        "admin",
        tuple(_user_rules((*ALL_VERBS, "deletecollection"), operate=True)),
    ),
    UserRole("kubevirt.io:edit", "edit", tuple(_user_rules(ALL_VERBS, operate=True))),
    UserRole("kubevirt.io:view", "view", tuple(_user_rules(READ, operate=False))),
    UserRole(
        f"{datavolume.GROUP}:admin",
        "admin",
        (rule((datavolume.GROUP,), (datavolume.PLURAL,), (*ALL_VERBS, "deletecollection")),),
    ),
    UserRole(
        f"{datavolume.GROUP}:edit",
        "edit",
        (rule((datavolume.GROUP,), (datavolume.PLURAL,), ALL_VERBS),),
    ),
    UserRole(
        f"{datavolume.GROUP}:view", "view", (rule((datavolume.GROUP,), (datavolume.PLURAL,), READ),)
    ),
)

# The calls each daemon's code makes (see the module doc for how they are checked).
CONTROLLER_RULES: Final = (
    # VMs and replica sets make and remove VMIs; the VMI controller patches their status
    rule(
        (kinds.GROUP,),
        ("virtualmachineinstances",),
        ("get", "list", "watch", "create", "patch", "delete"),
    ),
    rule(
        (kinds.GROUP,),
        ("virtualmachines", "virtualmachineinstancereplicasets"),
        ("list", "watch"),
    ),
    # finalizer, a Start's runStrategy; the verbs read a VM fresh before they patch it
    rule((kinds.GROUP,), ("virtualmachines",), ("get", "patch")),
    rule(
        (kinds.GROUP,),
        ("virtualmachines/status", "virtualmachineinstancereplicasets/status"),
        ("patch",),
    ),
    rule(("",), ("pods",), ("list", "watch", "create", "delete")),
    rule(("",), ("persistentvolumeclaims",), ("get", "list", "watch")),
    # DataVolumes: VMs make them from their templates; the DV controller makes each one's claim
    # and importer pod, and reads the importer's outcome from its log
    rule((datavolume.GROUP,), (datavolume.PLURAL,), ("list", "watch", "create")),
    rule((datavolume.GROUP,), (f"{datavolume.PLURAL}/status",), ("patch",)),
    rule(("",), ("persistentvolumeclaims",), ("create",)),
    rule(("",), ("pods/log",), ("get",)),
    rule(("",), ("nodes",), ("list", "watch", "patch")),  # the heartbeat watchdog
    rule(("",), ("events",), ("create",)),
    # ControllerService: who calls (TokenReview), and may they (SubjectAccessReview)
    rule(("authentication.k8s.io",), ("tokenreviews",), ("create",)),
    rule(("authorization.k8s.io",), ("subjectaccessreviews",), ("create",)),
    # subresources.kubevirt.io: the front proxy's CA and identity headers (kube-aggregator's
    # contract; the ConfigMap lives in kube-system)
    rule(("",), ("configmaps",), ("get",), ("extension-apiserver-authentication",)),
)
CONTROLLER_NAMESPACE_RULES: Final = (
    rule(("coordination.k8s.io",), ("leases",), ("create",)),  # create takes no name
    rule(("coordination.k8s.io",), ("leases",), ("get", "update"), (LEASE,)),
    rule(("",), ("configmaps",), ("list", "watch"), (CONFIG_MAP,)),
)
HANDLER_RULES: Final = (
    rule((kinds.GROUP,), ("virtualmachineinstances",), ("list", "watch", "patch")),
    rule(("",), ("nodes",), ("patch",)),  # its own: heartbeat, schedulable, its address
    rule(("",), ("events",), ("create",)),
    rule(("authentication.k8s.io",), ("tokenreviews",), ("create",)),  # HandlerService callers
)
LOCAL_NODE_RULES: Final = (
    rule(("",), ("nodes",), ("get", "list", "watch", "create", "patch")),
    rule(("",), ("nodes/status",), ("patch",)),
    rule(("",), ("pods",), ("list", "watch", "delete")),
    rule(("",), ("pods/status",), ("patch",)),
    rule(("",), ("pods/binding",), ("create",)),  # it schedules its own pods
    rule(("coordination.k8s.io",), ("leases",), ("create", "patch")),
    rule(("",), ("configmaps", "secrets"), ("get",)),
    rule(("",), ("serviceaccounts/token",), ("create",)),  # projected token volumes
    # its storage controller: kube's persistent-volume-binder plus a provisioner and resizer
    rule(("",), ("persistentvolumeclaims",), ("get", "list", "watch", "patch")),
    rule(("",), ("persistentvolumeclaims/status",), ("patch",)),
    rule(("",), ("persistentvolumes",), ("get", "list", "watch", "create", "patch", "delete")),
    rule(("",), ("persistentvolumes/status",), ("patch",)),
    rule(("storage.k8s.io",), ("storageclasses",), ("get", "list", "watch", "create")),
    rule(("",), ("events",), ("create",)),
    # cluster IPs made reachable (kvd/local/node/proxy.py), as kube's system:node-proxier reads
    rule(("",), ("services",), ("list", "watch")),
    rule(("discovery.k8s.io",), ("endpointslices",), ("list", "watch")),
)


def metadata(name: str, *, labels: dict[str, str] | None = None, namespace: str = "") -> Json:
    meta: Json = {"name": name, "labels": {APP_LABEL: "", **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def cluster_role(name: str, rules: tuple[Json, ...], **labels: str) -> Json:
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterRole",
        "metadata": metadata(name, labels=labels),
        "rules": list(rules),
    }


def user_roles() -> list[Json]:
    return [
        cluster_role(r.name, r.rules, **{f"{RBAC}/aggregate-to-{r.aggregate_to}": "true"})
        for r in USER_ROLES
    ]


def daemon_objects(
    namespace: str, *, controller: str = CONTROLLER, handler: str = HANDLER
) -> list[Json]:
    """The daemons' ServiceAccounts, roles and bindings, in `namespace` (kvd's); each role and
    binding is named after its ServiceAccount (`controller`, `handler`)."""
    out: list[Json] = []
    for name, rules in ((controller, CONTROLLER_RULES), (handler, HANDLER_RULES)):
        out += [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": metadata(name, namespace=namespace),
            },
            cluster_role(name, rules),
            _binding("ClusterRoleBinding", name, "ClusterRole", _service_account(name, namespace)),
        ]
    out += [
        {
            "apiVersion": API_VERSION,
            "kind": "Role",
            "metadata": metadata(controller, namespace=namespace),
            "rules": list(CONTROLLER_NAMESPACE_RULES),
        },
        _binding(
            "RoleBinding",
            controller,
            "Role",
            _service_account(controller, namespace),
            namespace=namespace,
        ),
    ]
    return out


def local_node_objects() -> list[Json]:
    """The local node's role, bound to the group every node's user is in (`system:nodes`)."""
    subject = {"kind": "Group", "apiGroup": RBAC, "name": NODES_GROUP}
    return [
        cluster_role(LOCAL_NODE, LOCAL_NODE_RULES),
        _binding("ClusterRoleBinding", LOCAL_NODE, "ClusterRole", subject),
    ]


def node_user(node: str) -> str:
    """The user a node authenticates as, kube's convention (`system:node:<name>`)."""
    return f"system:node:{node}"


def service_account_user(name: str, namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def _service_account(name: str, namespace: str) -> Json:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def _binding(kind: str, name: str, role_kind: str, subject: Json, *, namespace: str = "") -> Json:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata(name, namespace=namespace),
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": name},
        "subjects": [subject],
    }


def render() -> str:
    """The chart's template: the user roles and the daemons' objects in the release namespace,
    named as the values say."""
    docs = [
        *user_roles(),
        *daemon_objects(
            NAMESPACE_PLACEHOLDER, controller=CONTROLLER_PLACEHOLDER, handler=HANDLER_PLACEHOLDER
        ),
    ]
    header = (
        "# Generated by `make crds` (python -m kvd.api.rbac) from kvd/api/rbac.py; do not edit.\n"
    )
    return header + "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def write(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rbac.yaml"
    path.write_text(render())
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("charts/kvd/templates"))
    print(write(parser.parse_args(argv).out))


if __name__ == "__main__":
    main()
