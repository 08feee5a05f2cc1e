"""API aggregation, as kube-apiserver's kube-aggregator does it.

An `APIService` (apiregistration.k8s.io/v1) named `<version>.<group>` either says the group
version is served here (no `spec.service`: "local") or names a Service whose endpoints serve
it. This package gives those objects their meaning:

- `validation`: kube's checks and defaults for an APIService, as an admission link.
- `endpoints`: spec.service → one HTTPS endpoint, from the Service and its EndpointSlices
  (kube's aggregator-routing mode: the local cluster has no service proxy).
- `availability`: the controller that writes the `Available` condition, probing
  `/apis/<group>/<version>` on the backend.
- `proxy`: requests under `/apis/<group>/<version>/…` for an available APIService, after this
  server authenticated, audited and authorized them, forwarded with the front-proxy client
  certificate and the caller's identity in `X-Remote-*` headers (websockets relayed).
- `discovery`: the aggregated groups in `/apis` and `/apis/<group>`.
- `frontproxy`: the front-proxy CA and client certificate, and the
  `kube-system/extension-apiserver-authentication` ConfigMap that tells a backend how to trust
  the proxied identity.
"""
