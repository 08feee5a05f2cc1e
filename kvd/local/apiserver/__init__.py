"""An embedded Kubernetes-compatible API server for the local cluster (no kube-apiserver here).

Speaks the Kubernetes REST conventions closely enough that the official `kubernetes` client and
`kubectl` work against it unmodified: discovery, CRUD with resourceVersions and optimistic
concurrency, watch, patch, finalizers and garbage collection, selectors, tables, and CRDs with
structural schemas. Objects persist in SQLite (WAL), as k3s keeps them through kine.
"""
