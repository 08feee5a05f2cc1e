"""Label and field selectors, parsed and matched as apimachinery does.

kube-apiserver turns ``?labelSelector=`` into a ``labels.Selector`` with a small hand-written lexer
and recursive-descent parser (``k8s.io/apimachinery/pkg/labels/selector.go``), and
``?fieldSelector=`` into a ``fields.Selector`` by splitting on unescaped commas
(``.../pkg/fields/selector.go``). Clients (kubectl, client-go, the Python client) build these
strings and sometimes show the server's error text to users, so kvd follows the same grammar, the
same validation and the same error messages, quirks included.

Both selectors are immutable values: parse once per request, then ``matches`` per object. What
a label requirement matches is kvd's shared ``kvd.api.labels`` (the scheduler and kvd.api's
validation use the same); the modules here turn text and objects into those requirements with
apimachinery's checks and words: ``labels`` (label key/value validation, ``NewRequirement``,
``metav1.LabelSelector``), ``label_parser`` (the ``labelSelector`` grammar) and ``fields``.
Callers import this package, not its modules.
"""

from __future__ import annotations

from kvd.local.apiserver.selectors.fields import (
    FieldSelector,
    FieldTerm,
    escape_field_value,
    parse_field_selector,
)
from kvd.local.apiserver.selectors.label_parser import parse_label_selector
from kvd.local.apiserver.selectors.labels import (
    EVERYTHING,
    NOTHING,
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    from_label_selector_object,
    label_key_errors,
    label_value_errors,
    new_requirement,
)

__all__ = [
    "EVERYTHING",
    "NOTHING",
    "FieldSelector",
    "FieldTerm",
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "escape_field_value",
    "from_label_selector_object",
    "label_key_errors",
    "label_value_errors",
    "new_requirement",
    "parse_field_selector",
    "parse_label_selector",
]
