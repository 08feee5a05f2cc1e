"""What kube-controller-manager runs for apps workloads and Services, in the local API server.

Each controller is a `loop.Reconciler` run in the server's event loop on the store's watch, as
the namespace and ServiceAccount controllers are: `replicasets`, `deployments` (`rollout` holds
its arithmetic), `daemonsets`, `endpointslices` (Services with a selector) and `disruption`
(PodDisruptionBudget status). `ownership` is what they share: controller references, adoption,
pods from templates and pod readiness; `events` their Events. `strategy` is their admission
link (cluster IPs and node ports from `services`, immutable selectors), and `columns` their
`kubectl get` columns. `controllers` lists the controllers for `server.APIServer` to start.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from kvd.local.apiserver.deletion import Deleter
from kvd.local.apiserver.workloads import (
    daemonsets,
    deployments,
    disruption,
    endpointslices,
    loop,
    replicasets,
)


def controllers(deleter: Deleter) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    """(name, run) of each workload controller, for the server's background tasks."""
    reconcilers: list[loop.Reconciler] = [
        replicasets.ReplicaSetController(deleter),
        deployments.DeploymentController(deleter),
        daemonsets.DaemonSetController(deleter),
        endpointslices.EndpointSliceController(deleter),
        disruption.DisruptionController(deleter),
    ]
    return [(r.name, functools.partial(loop.run, r, deleter.store)) for r in reconcilers]
