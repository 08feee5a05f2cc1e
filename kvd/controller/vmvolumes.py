"""A VM's DataVolumes: those its `dataVolumeTemplates` ask for, made and owned by the VM, and
what the VM's start and printableStatus need to know of them (KubeVirt's vm.go
handleDataVolumes and storagetypes' HasDataVolumeErrors/Provisioning).

Each template becomes a DataVolume named as the template says, in the VM's namespace, with an
owner reference to the VM (controller, blocking deletion): it goes when the VM goes. One that
exists already and is not the VM's is left alone (KubeVirt adopts only orphans it can claim;
kvd reports the clash as an Event). The VMI starts only once every DataVolume its volumes name
has Succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvd import logs
from kvd.api import datavolume as dvapi
from kvd.kube import events, informer
from kvd.kube.client import ApiError, Raw

log = logs.get_logger(__name__)

Json = dict[str, Any]


def data_volume_names(vm: Json) -> list[str]:
    """The DataVolumes a VM uses: its templates' and its template's dataVolume volumes'."""
    spec = vm.get("spec") or {}
    names = [
        str((t.get("metadata") or {}).get("name"))
        for t in spec.get("dataVolumeTemplates") or []
        if isinstance(t, dict) and (t.get("metadata") or {}).get("name")
    ]
    volumes = ((spec.get("template") or {}).get("spec") or {}).get("volumes") or []
    for v in volumes:
        name = ((v.get("dataVolume") or {}) if isinstance(v, dict) else {}).get("name")
        if name and name not in names:
            names.append(str(name))
    return names


@dataclass(frozen=True)
class View:
    """What the VM's status needs of its DataVolumes."""

    ready: bool = True  # every one exists and Succeeded
    error: bool = False  # one Failed, or its importer fails and restarts
    provisioning: bool = False  # one is on its way (or not made yet)
    waiting_for_binding: bool = False  # one waits for its claim's first consumer


ALL_READY = View()


class DataVolumes:
    def __init__(
        self, *, raw: Raw, dvs: informer.Informer | None, recorder: events.Recorder
    ) -> None:
        self.raw = raw
        self.dvs = dvs
        self.recorder = recorder

    def ensure(self, vm: Json) -> None:
        """Create the DataVolumes of the VM's templates that do not exist yet."""
        if self.dvs is None:
            return
        meta = vm["metadata"]
        for template in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
            tmeta = dict(template.get("metadata") or {})
            name = tmeta.get("name")
            if not name or self.dvs.get(f"{meta['namespace']}/{name}") is not None:
                continue
            tmeta.pop("creationTimestamp", None)
            body = {
                "apiVersion": f"{dvapi.GROUP}/{dvapi.VERSION}",
                "kind": dvapi.KIND,
                "metadata": {
                    **tmeta,
                    "namespace": meta["namespace"],
                    "ownerReferences": [
                        {
                            "apiVersion": "kubevirt.io/v1",
                            "kind": "VirtualMachine",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": template.get("spec") or {},
            }
            try:
                self.raw.create(dvapi.path(meta["namespace"]), body)
            except ApiError as exc:
                if exc.status == 409:
                    continue  # made meanwhile (its event is on the way)
                self.recorder.event(
                    vm,
                    events.WARNING,
                    "FailedDataVolumeCreate",
                    f"Error creating DataVolume {name}: {exc.message}",
                )
                log.warning("datavolume_create_failed", vm=informer.key_of(vm), error=exc.message)
                continue
            log.info("datavolume_created", vm=informer.key_of(vm), dv=name)
            self.recorder.event(
                vm, events.NORMAL, "SuccessfulDataVolumeCreate", f"Created DataVolume {name}"
            )

    def view(self, vm: Json) -> View:
        if self.dvs is None:
            return View()
        namespace = vm["metadata"]["namespace"]
        ready, error, provisioning, waiting = True, False, False, False
        for name in data_volume_names(vm):
            dv = self.dvs.get(f"{namespace}/{name}")
            if dv is None:
                ready, provisioning = False, True
                continue
            status = dv.get("status") or {}
            phase = status.get("phase") or ""
            if phase == dvapi.SUCCEEDED:
                continue
            ready = False
            running: Json = next(
                (c for c in status.get("conditions") or [] if c.get("type") == dvapi.RUNNING), {}
            )
            if phase == dvapi.FAILED or (
                running.get("status") == "False" and running.get("reason") == dvapi.REASON_ERROR
            ):
                error = True
            elif phase == dvapi.WAIT_FOR_FIRST_CONSUMER:
                waiting = True
            else:
                provisioning = True
        return View(
            ready=ready, error=error, provisioning=provisioning, waiting_for_binding=waiting
        )
