"""Local storage for the local cluster: kube's PV controller and a local-path-style provisioner.

`keys` holds the API's words (annotations, the default StorageClass), `matching` which volume a
claim may bind, `scheduling` what the scheduler's VolumeBinding step decides for a pod,
`backing` and `loop` the data on the host, and `controller` the reconcile loops that run in the
local node's process (the node owns the host's disks, as a provisioner pod on it would).
"""
