"""OpenAPI for the local API server: Kubernetes' schemas for the built-in kinds, the CRDs' own.

kubectl reads these documents for `kubectl explain`, for client-side `apply` and `diff` (the
strategic-merge-patch metadata: x-kubernetes-patch-strategy and -merge-key, list types) and to
learn that the server validates fields itself. `definitions` holds Kubernetes 1.37's definitions
(vendored, see there for their origin), `documents` builds the swagger 2.0 and OpenAPI 3.0
documents from what the registry serves, `gnostic` encodes 2.0 as the protobuf kubectl asks for,
and `service` serves them with kube-openapi's caching rules (ETags, hashed 3.0 URLs).
"""

from __future__ import annotations

from kvd.local.apiserver.openapi.definitions import Definitions, load
from kvd.local.apiserver.openapi.service import OpenAPIService

__all__ = ["Definitions", "OpenAPIService", "load"]
