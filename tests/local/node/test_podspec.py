"""Container specs from pod specs, as the kubelet builds them (pure logic; no processes)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from kvd.local import images
from kvd.local.apiserver.workloads import services as workload_services
from kvd.local.node import containers, podspec

CONTEXT = podspec.PodContext(node_name="node-1", pod_ip="10.88.0.7", host_ip="10.88.0.1")
BUSYBOX = images.HostImage("busybox")
OBJECTS = {
    ("configmaps", "default", "settings"): {"data": {"color": "blue", "size": "L"}},
    ("secrets", "default", "creds"): {"data": {"token": "czNjcjN0"}},  # base64 "s3cr3t"
}


def lookup(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((kind, namespace, name))


def pod(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "labels": {"app": "x"}},
        "spec": {"containers": [container]},
    }


def spec(container: dict[str, Any], image: images.Resolved = BUSYBOX) -> Any:
    container = {"name": "main", "image": "busybox", **container}
    return podspec.container_spec(
        pod(container), container, image=image, volumes={}, context=CONTEXT, lookup=lookup
    )


def test_environment_from_values_downward_api_config_maps_and_secrets() -> None:
    env = spec(
        {
            "command": ["true"],
            "env": [
                {"name": "A", "value": "a"},
                {"name": "B", "value": "$(A)-b $$(A) $(UNDEFINED)"},
                {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {
                    "name": "APP",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}},
                },
                {
                    "name": "COLOR",
                    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}},
                },
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            ],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
        }
    ).env
    assert env["B"] == "a-b $(A) $(UNDEFINED)"
    assert (env["NAME"], env["UID"], env["NODE"], env["IP"]) == (
        "web",
        "u-1",
        "node-1",
        "10.88.0.7",
    )
    assert (env["APP"], env["COLOR"], env["TOKEN"]) == ("x", "blue", "s3cr3t")
    assert (env["CM_color"], env["CM_size"]) == ("blue", "L")


def test_every_container_is_told_where_the_api_server_is() -> None:
    """As a kubelet sets them, pointing at the `kubernetes` Service the API server publishes;
    a container's own value wins."""
    env = spec(
        {"command": ["true"], "env": [{"name": "KUBERNETES_SERVICE_PORT", "value": "1"}]}
    ).env
    first = workload_services.SERVICE_CIDR.network_address + 1
    assert env["KUBERNETES_SERVICE_HOST"] == str(first)
    assert env["KUBERNETES_PORT_443_TCP"] == f"tcp://{first}:443"
    assert env["KUBERNETES_SERVICE_PORT"] == "1"


def test_command_and_args_expand_variables_and_resolve_on_path() -> None:
    s = spec({"command": ["sh", "-c"], "args": ["echo $(X)"], "env": [{"name": "X", "value": "1"}]})
    assert s.argv[0].endswith("/sh") and s.argv[1:] == ("-c", "echo 1")


def test_kvd_images_run_this_installations_kvd() -> None:
    s = spec({"args": ["launcher", "--help"]}, image=images.KvdImage("ghcr.io/kvd-project/kvd"))
    assert s.argv[0].endswith("/kvd") and s.argv[1:] == ("launcher", "--help")


@pytest.mark.parametrize(
    ("container", "reason", "words"),
    [
        ({"command": ["no-such-program"]}, "StartError", '"no-such-program": executable file'),
        (
            {
                "command": ["true"],
                "env": [
                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}
                ],
            },
            "CreateContainerConfigError",
            "nope",
        ),
        (
            {"command": ["true"], "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            "CreateContainerConfigError",
            'refers to volume "data"',
        ),
    ],
)
def test_bad_specs_name_what_is_wrong(container: dict[str, Any], reason: str, words: str) -> None:
    with pytest.raises(podspec.ContainerConfigError) as failed:
        spec(container)
    assert failed.value.reason == reason
    assert words in failed.value.message


VOLUMES = {
    "claim": podspec.Volume(source=Path("/dev/loop7"), block=True, block_claim=True),
    "files": podspec.Volume(source=Path("/srv/pv")),
    "device": podspec.Volume(source=Path("/dev/loop7"), block=True),  # a hostPath of a device
}


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        pytest.param(
            {"volumeDevices": [{"name": "claim", "devicePath": "/dev/xvda"}]},
            (Path("/dev/xvda"), Path("/dev/loop7")),
            id="block-claim-device",
        ),
        pytest.param(
            {"volumeMounts": [{"name": "device", "mountPath": "/dev/disk"}]},
            (Path("/dev/disk"), Path("/dev/loop7")),
            id="host-device-mounted",
        ),
        pytest.param(
            {"volumeMounts": [{"name": "claim", "mountPath": "/data"}]},
            'volume "claim" is a volumeMode: Block claim: use volumeDevices',
            id="block-claim-mounted",
        ),
        pytest.param(
            {"volumeDevices": [{"name": "files", "devicePath": "/dev/xvda"}]},
            'volume "files" is not a block volume: use volumeMounts',
            id="filesystem-as-device",
        ),
    ],
)
def test_block_claims_are_devices_never_mounts(
    container: dict[str, Any], expected: tuple[Path, Path] | str
) -> None:
    """As the kubelet: a Block-mode claim is mapped (volumeDevices), a filesystem one mounted."""
    container = {"name": "main", "image": "busybox", "command": ["true"], **container}

    def build() -> Any:
        return podspec.container_spec(
            pod(container), container, image=BUSYBOX, volumes=VOLUMES, context=CONTEXT,
            lookup=lookup,
        )  # fmt: skip

    if isinstance(expected, str):
        with pytest.raises(podspec.ContainerConfigError, match=expected) as failed:
            build()
        assert failed.value.reason == "CreateContainerConfigError"
        return
    [mount] = build().mounts
    assert (mount.path, mount.source) == expected


def test_memory_limit_in_bytes() -> None:
    s = spec({"command": ["true"], "resources": {"limits": {"memory": "64Mi"}}})
    assert s.memory_limit == 64 * 2**20


def test_kvd_image_sees_its_installation_even_under_a_private_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a checkout in /tmp: /tmp is a fresh tmpfs in every container, so it is bound back in
    monkeypatch.setattr(sys, "prefix", "/tmp/checkout/.venv")
    s = spec({"args": ["launcher"]}, image=images.KvdImage("ghcr.io/kvd-project/kvd"))
    binds = {(str(m.path), str(m.source), m.read_only) for m in s.mounts}
    assert ("/tmp/checkout/.venv", "/tmp/checkout/.venv", True) in binds
    # other images get nothing of the sort
    assert not spec({"command": ["true"]}).mounts


@pytest.mark.parametrize(
    ("pod_ctx", "ctx", "expected"),
    [
        pytest.param({}, {}, (None, None, False), id="none"),
        pytest.param({"runAsUser": 1001, "runAsGroup": 7}, {}, (1001, 7, False), id="pod"),
        pytest.param(
            {"runAsUser": 1001},
            {"runAsUser": 1002, "readOnlyRootFilesystem": True},
            (1002, None, True),
            id="container-wins",
        ),
        pytest.param(
            {"runAsNonRoot": True, "runAsUser": 1001}, {}, (1001, None, False), id="non-root-ok"
        ),
    ],
)
def test_security_context_merges_the_containers_over_the_pods(
    pod_ctx: dict[str, Any], ctx: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    container = {"name": "main", "image": "busybox", "command": ["true"], "securityContext": ctx}
    p = pod(container)
    p["spec"]["securityContext"] = pod_ctx
    assert podspec.security(p, container) == expected
    built = podspec.container_spec(
        p, container, image=BUSYBOX, volumes={}, context=CONTEXT, lookup=lookup
    )
    assert (built.user, built.group, built.read_only_root) == expected


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        pytest.param(
            {"runAsNonRoot": True, "runAsUser": 0},
            "container's runAsUser breaks non-root policy "
            '(pod: "web_default(u-1)", container: main)',
            id="uid-0",
        ),
        pytest.param(
            {"runAsNonRoot": True},
            'container has runAsNonRoot and image will run as root (pod: "web_default(u-1)", '
            "container: main)",
            id="no-uid",
        ),
        pytest.param(
            {"runAsUser": "1001"}, "securityContext.runAsUser must be an integer", id="not-int"
        ),
    ],
)
def test_non_root_policy_fails_the_container_with_the_kubelets_message(
    ctx: dict[str, Any], message: str
) -> None:
    with pytest.raises(podspec.ContainerConfigError) as refused:
        spec({"command": ["true"], "securityContext": ctx})
    assert refused.value.reason == "CreateContainerConfigError"
    assert refused.value.message == message


def test_kvd_image_as_non_root_sees_its_installation_past_a_private_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A venv's interpreter under /root (0700): a non-root container gets the blocking directory
    as a private tmpfs with the installation bound into it, as an image would hold it."""
    home = tmp_path / "home"
    install_root = home / "pyenv"
    install_root.mkdir(parents=True)
    home.chmod(0o700)
    image = images.KvdImage("localhost/kvd/kvd-controller:0.1.0")
    monkeypatch.setattr(
        type(image), "installation", property(lambda _: (install_root,)), raising=True
    )
    container = {"name": "main", "image": image.reference, "securityContext": {"runAsUser": 1001}}
    built = podspec.container_spec(
        pod(container), container, image=image, volumes={}, context=CONTEXT, lookup=lookup
    )
    hidden = [p for p in built.private if p not in containers.DEFAULT_PRIVATE]
    assert len(hidden) == 1 and install_root.is_relative_to(hidden[0]), hidden
    assert any(m.path == install_root and m.read_only for m in built.mounts)
    as_root = podspec.container_spec(
        pod({**container, "securityContext": {}}),
        {**container, "securityContext": {}},
        image=image, volumes={}, context=CONTEXT, lookup=lookup,
    )  # fmt: skip
    assert as_root.private == containers.DEFAULT_PRIVATE
