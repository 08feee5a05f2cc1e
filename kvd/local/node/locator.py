"""Which file holds a container's log and which process is a container: for `kubectl logs/exec`.

The node API (`kubelet_api`) asks by namespace, pod and container name; the answer comes from the
node's pod cache (name → uid) and the runtime (uid, container → attempts, pid). Messages are the
kubelet's, since kubectl shows them verbatim.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvd.local.node import containers
from kvd.local.node.kubelet_api import ContainerLog, ContainerUnavailable

Json = dict[str, Any]


class Locator:
    def __init__(
        self, *, pod: Callable[[str], Json | None], runtime: containers.Containers
    ) -> None:
        self._pod = pod
        self._runtime = runtime

    def container_log(
        self, namespace: str, pod: str, container: str | None, *, previous: bool
    ) -> ContainerLog:
        obj, name = self._find(namespace, pod, container)
        uid = obj["metadata"]["uid"]
        attempts = self._runtime.attempts(uid, name)
        if not attempts:
            raise ContainerUnavailable(
                f'container "{name}" in pod "{pod}" is waiting to start: '
                f"{_waiting_reason(obj, name)}"
            )
        if previous:
            if len(attempts) < 2:
                raise ContainerUnavailable(
                    f'previous terminated container "{name}" in pod "{pod}" not found'
                )
            attempt = attempts[-2]
        else:
            attempt = attempts[-1]
        runtime = self._runtime

        def running() -> bool:
            current = runtime.status(uid, name)
            return current is not None and current.attempt == attempt and current.running

        return ContainerLog(path=runtime.log_path(uid, name, attempt), running=running)

    def container_pid(self, namespace: str, pod: str, container: str | None) -> int:
        obj, name = self._find(namespace, pod, container)
        uid = obj["metadata"]["uid"]
        current = self._runtime.status(uid, name)
        pid = self._runtime.main_pid(uid, name) if current and current.running else None
        if pid is None:
            raise ContainerUnavailable(
                f'container "{name}" in pod "{pod}" is not running'
                if current
                else f'container "{name}" in pod "{pod}" is waiting to start: '
                f"{_waiting_reason(obj, name)}"
            )
        return pid

    def _find(self, namespace: str, pod: str, container: str | None) -> tuple[Json, str]:
        obj = self._pod(f"{namespace}/{pod}")
        if obj is None:
            raise ContainerUnavailable(f'pods "{pod}" not found', status=404)
        spec = obj.get("spec") or {}
        names = [
            c["name"]
            for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        ]
        if container is None:
            main = [c["name"] for c in spec.get("containers") or []]
            if len(main) != 1:
                raise ContainerUnavailable(
                    f"a container name must be specified for pod {pod}, "
                    f"choose one of: [{' '.join(main)}]"
                )
            return obj, main[0]
        if container not in names:
            raise ContainerUnavailable(f"container {container} is not valid for pod {pod}")
        return obj, container


def _waiting_reason(pod: Json, name: str) -> str:
    st = pod.get("status") or {}
    for s in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
        if s.get("name") == name:
            reason = ((s.get("state") or {}).get("waiting") or {}).get("reason")
            if reason:
                return str(reason)
    return "ContainerCreating"
