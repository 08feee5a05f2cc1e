"""What schema validation reports: metav1.StatusCause entries, with kube's reasons.

Both validation passes (`validation`, `listtype`) and the CRD checks (`structural`) describe a
problem as a `Cause`, the entry of `details.causes` in a 422 Invalid response, so the server can
return it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
TYPE_INVALID = "FieldValueTypeInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
DUPLICATE = "FieldValueDuplicate"


@dataclass(frozen=True)
class Cause:
    """One metav1.StatusCause: an entry of `details.causes` in a 422 Invalid response."""

    reason: str
    message: str
    field: str
