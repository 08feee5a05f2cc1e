"""The local cluster: an embedded Kubernetes-compatible API server and a local node."""
