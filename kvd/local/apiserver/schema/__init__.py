"""CRD structural schemas, applied to custom resources the way kube-apiserver's apiextensions does.

A CRD version's `openAPIV3Schema` is checked once, when the CRD is written (`structural`, with
apiextensions' extra rules in `restrictions`: kube's messages, or kvd's refusal of CEL rules it
cannot run). Every custom resource the server decodes, from a request or from storage, then goes
through the same steps as in kube, in order:

1. decode the JSON body;
2. `apply_defaults` (`defaulting`): drop nulls the schema neither allows nor defaults, fill in
   defaults;
3. `prune` (`pruning`): drop unknown fields (root apiVersion/kind/metadata stay; the caller prunes
   metadata to ObjectMeta). The pruned paths are what `fieldValidation=Strict` refuses as
   `unknown field "spec.foo"` and `=Warn` (the default) returns as warnings;
4. `validate` (`validation`, then the list-type pass in `listtype`; writes only): the `causes`
   of a 422 Invalid, empty when the object is valid.

`openapi_v3` (`openapi`) renders a schema as it is published under /openapi/v3. `values` and
`formats` hold what the others share: JSON values as Go sees and prints them, and string formats.
Everything here is pure: plain dicts and lists in, new ones out, the inputs never changed. Callers
import this package, not its modules.
"""

from __future__ import annotations

from kvd.local.apiserver.schema.causes import Cause
from kvd.local.apiserver.schema.defaulting import apply_defaults
from kvd.local.apiserver.schema.openapi import openapi_v3
from kvd.local.apiserver.schema.pruning import prune
from kvd.local.apiserver.schema.restrictions import CEL_UNSUPPORTED
from kvd.local.apiserver.schema.structural import check_structural, structural_causes
from kvd.local.apiserver.schema.validation import validate

__all__ = [
    "CEL_UNSUPPORTED",
    "Cause",
    "apply_defaults",
    "check_structural",
    "openapi_v3",
    "prune",
    "structural_causes",
    "validate",
]
