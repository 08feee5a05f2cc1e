"""Whether a CRD version's `openAPIV3Schema` is one kube-apiserver would accept, in its words.

kube accepts a v1 CRD only with a structural schema, and kvd's engine (pruning, defaulting,
validation) is only defined for those, so a schema that fails here must refuse the CRD. The checks
are kube's, in kube's order: the structural invariants and completeness (sorted, as kube sorts
them), then whether every `default` is pruned and valid (only once the schema is structural), then
apiextensions' OpenAPI restrictions (`restrictions`), where kvd adds one of its own:
`x-kubernetes-validations` (CEL) is refused, since kvd cannot evaluate it and a rule silently not
enforced is worse than a CRD refused.

Messages are `<field>: <ErrorBody>` in apimachinery's field.Path syntax, e.g.
`openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object
fields`; the caller passes the path of the schema (`spec.versions[0].schema.openAPIV3Schema`).
`structural_causes` splits them into the causes of kube's 422 for the CRD.
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver.schema import pruning
from kvd.local.apiserver.schema.causes import Cause
from kvd.local.apiserver.schema.restrictions import (
    CEL_UNSUPPORTED,
    META,
    as_dict,
    as_list,
    restriction_errors,
    shape_errors,
    type_of,
)
from kvd.local.apiserver.schema.validation import value_causes
from kvd.local.apiserver.schema.values import (
    PatternError,
    compile_pattern,
    forbidden,
    invalid,
    required,
)

__all__ = ["CEL_UNSUPPORTED", "check_structural", "structural_causes"]

_ROOT, _ITEM, _FIELD = "root", "item", "field"
_EMPTY_TYPE = {
    _ROOT: "must not be empty at the root",
    _ITEM: "must not be empty for specified array items",
    _FIELD: "must not be empty for specified object fields",
}
# The two int-or-string spellings kube lets keep a `type` inside anyOf.
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
_IMPLICIT_METADATA = (
    "must not specify anything other than name and generateName, "
    "but metadata is implicitly specified"
)


def check_structural(schema: Any, *, path: str = "openAPIV3Schema") -> list[str]:
    """Every reason kube-apiserver would refuse `schema`; empty when kvd can serve it."""
    if schema is None:
        return [required(path, "schemas are required")]
    shape = shape_errors(schema, path)
    if shape:
        return shape  # kube fails to decode such a CRD before it checks anything else
    errors = sorted(_invariants(schema, _ROOT, path) + _completeness(schema, schema, path, path))
    if not errors:
        errors = _defaults(schema, path, inside_meta=False, embedded_root=True)
    errors += restriction_errors(schema, path)
    return list(dict.fromkeys(errors))  # kube's ErrorList aggregate drops repeated messages


def _invariants(s: dict[str, Any], level: str, path: str) -> list[str]:
    """apiextensions' validateStructuralInvariants: the shape of a node outside value validation."""
    errors: list[str] = []
    items, props = s.get("items"), as_dict(s.get("properties"))
    if type_of(s) == "array" and items is None:
        errors.append(required(f"{path}.items", "must be specified"))
    if isinstance(items, dict):
        errors += _invariants(items, _ITEM, f"{path}.items")
    for key, sub in props.items():
        errors += _invariants(sub, _FIELD, f"{path}.properties[{key}]")
    if "additionalProperties" in s:
        if level == _ROOT:
            errors.append(forbidden(f"{path}.additionalProperties", "must not be used at the root"))
        if isinstance(s["additionalProperties"], dict):
            errors += _invariants(s["additionalProperties"], _FIELD, f"{path}.additionalProperties")
    if s.get("x-kubernetes-int-or-string") is True:
        for ext in ("preserve-unknown-fields", "embedded-resource"):
            if s.get(f"x-kubernetes-{ext}") is True:
                detail = "must be false if x-kubernetes-int-or-string is true"
                errors.append(invalid(f"{path}.x-kubernetes-{ext}", True, detail))
    skip_any_of = s.get("anyOf") == _INT_OR_STRING_ANY_OF
    all_of = as_list(s.get("allOf"))
    skip_first = bool(all_of) and as_dict(all_of[0]).get("anyOf") == _INT_OR_STRING_ANY_OF
    errors += _value_validation(s, skip_any_of, skip_first, path)
    return errors + _type_invariants(s, level, path)


def _type_invariants(s: dict[str, Any], level: str, path: str) -> list[str]:
    errors = []
    typ, props = type_of(s), as_dict(s.get("properties"))
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = s.get("x-kubernetes-embedded-resource") is True
    if embedded and typ != "object":
        detail = "must be object if x-kubernetes-embedded-resource is true"
        field = f"{path}.type"
        errors.append(invalid(field, typ, detail) if typ else required(field, detail))
    elif not typ and s.get("x-kubernetes-int-or-string") is not True and not preserve:
        errors.append(required(f"{path}.type", _EMPTY_TYPE[level]))
    if embedded and "additionalProperties" in s:
        detail = "must not be used if x-kubernetes-embedded-resource is set"
        errors.append(forbidden(f"{path}.additionalProperties", detail))
    if level == _ROOT and typ and typ != "object":
        errors.append(invalid(f"{path}.type", typ, "must be object at the root"))
    check_meta = level == _ROOT or embedded
    for key in ("kind", "apiVersion"):
        key_type = type_of(as_dict(props.get(key)))
        if key in props and check_meta and key_type != "string":
            errors.append(invalid(f"{path}.properties[{key}].type", key_type, "must be string"))
    if "metadata" in props:
        metadata, meta_path = as_dict(props["metadata"]), f"{path}.properties[metadata]"
        if check_meta and type_of(metadata) != "object":
            errors.append(invalid(f"{meta_path}.type", type_of(metadata), "must be object"))
        if level == _ROOT and _restricts_object_meta(metadata):
            errors.append(forbidden(meta_path, _IMPLICIT_METADATA))
    if embedded and not preserve and not props:
        detail = "must not be empty if x-kubernetes-embedded-resource is true without "
        detail += "x-kubernetes-preserve-unknown-fields"
        errors.append(required(f"{path}.properties", detail))
    return errors


def _zero(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)


def _restricts_object_meta(metadata: dict[str, Any]) -> bool:
    """At the root only name and generateName may be restricted: ObjectMeta is kube's, not the
    CRD's. `type` and `default` are checked elsewhere; zero values count as unset, as in Go."""
    rest = {
        key: value
        for key, value in metadata.items()
        if key not in ("type", "default") and not _zero(value)
    }
    names = set(as_dict(rest.get("properties")))
    if names in ({"name"}, {"generateName"}, {"name", "generateName"}):
        del rest["properties"]
    return bool(rest)


def _value_validation(
    v: dict[str, Any], skip_any_of: bool, skip_first: bool, path: str
) -> list[str]:
    errors: list[str] = []
    if not skip_any_of:
        for i, sub in enumerate(as_list(v.get("anyOf"))):
            errors += _nested(as_dict(sub), False, f"{path}.anyOf[{i}]")
    for i, sub in enumerate(as_list(v.get("allOf"))):
        errors += _nested(as_dict(sub), skip_first and i == 0, f"{path}.allOf[{i}]")
    for i, sub in enumerate(as_list(v.get("oneOf"))):
        errors += _nested(as_dict(sub), False, f"{path}.oneOf[{i}]")
    if isinstance(v.get("not"), dict):
        errors += _nested(v["not"], False, f"{path}.not")
    pattern = v.get("pattern")
    if isinstance(pattern, str) and pattern:
        try:
            compile_pattern(pattern)
        except PatternError as err:
            detail = f"must be a valid regular expression, but isn't: {err}"
            errors.append(invalid(f"{path}.pattern", pattern, detail))
    return errors


# What a value validation (under anyOf/allOf/oneOf/not) must leave unset, and how kube says it.
_NESTED_FORBIDDEN = (
    ("type", "must be empty"),
    ("additionalProperties", "must be undefined"),
    ("default", "must be undefined"),
    ("title", "must be empty"),
    ("description", "must be empty"),
    ("nullable", "must be false"),
    ("x-kubernetes-preserve-unknown-fields", "must be false"),
    ("x-kubernetes-embedded-resource", "must be false"),
    ("x-kubernetes-int-or-string", "must be false"),
    ("x-kubernetes-list-map-keys", "must be empty"),
    ("x-kubernetes-list-type", "must be undefined"),
    ("x-kubernetes-map-type", "must be undefined"),
    ("x-kubernetes-validations", "must be empty"),
)


def _nested(v: dict[str, Any], skip_any_of: bool, path: str) -> list[str]:
    """A value validation may only constrain what the structural part specifies, never shape it."""
    errors = _value_validation(v, skip_any_of, False, path)
    if isinstance(v.get("items"), dict):
        errors += _nested(v["items"], False, f"{path}.items")
    for key, sub in as_dict(v.get("properties")).items():
        errors += _nested(as_dict(sub), False, f"{path}.properties[{key}]")
    for key, how in _NESTED_FORBIDDEN:
        value = v.get(key)
        if how == "must be undefined":
            bad = value is not None
        elif how == "must be false":
            bad = value is True
        else:
            bad = bool(value)
        if bad:
            errors.append(forbidden(f"{path}.{key}", f"{how} to be structural"))
    if "metadata" in as_dict(v.get("properties")):
        detail = "must not be specified in a nested context"
        errors.append(forbidden(f"{path}.properties[metadata]", detail))
    return errors


def _completeness(
    v: dict[str, Any], s: dict[str, Any] | None, s_path: str, v_path: str
) -> list[str]:
    """Whatever a value validation names must also be specified outside of it."""
    if s is None:
        return [required(s_path, f"because it is defined in {v_path}")]
    errors: list[str] = []
    if isinstance(v.get("not"), dict):
        errors += _nested_completeness(v["not"], s, s_path, f"{v_path}.not")
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(as_list(v.get(junctor))):
            errors += _nested_completeness(as_dict(sub), s, s_path, f"{v_path}.{junctor}[{i}]")
    return errors


def _nested_completeness(
    v: dict[str, Any], s: dict[str, Any] | None, s_path: str, v_path: str
) -> list[str]:
    if s is None:
        return [required(s_path, f"because it is defined in {v_path}")]
    errors = _completeness(v, s, s_path, v_path)
    if isinstance(v.get("items"), dict):
        items = s.get("items")
        s_items = items if isinstance(items, dict) else None
        errors += _nested_completeness(v["items"], s_items, f"{s_path}.items", f"{v_path}.items")
    s_props = as_dict(s.get("properties"))
    for key, sub in as_dict(v.get("properties")).items():
        sub_s, sub_v = f"{s_path}.properties[{key}]", f"{v_path}.properties[{key}]"
        if key in s_props:
            errors += _nested_completeness(as_dict(sub), as_dict(s_props[key]), sub_s, sub_v)
        else:
            errors.append(required(sub_s, f"because it is defined in {sub_v}"))
    return errors


def _defaults(s: dict[str, Any], path: str, *, inside_meta: bool, embedded_root: bool) -> list[str]:
    """kube's ValidateDefaults: each default is already pruned and valid for its own node."""
    errors: list[str] = []
    embedded = embedded_root or s.get("x-kubernetes-embedded-resource") is True
    inside_meta = inside_meta and not embedded
    default = s.get("default")
    # Defaults in top-level metadata are refused as such; nested ones are ObjectMeta's business.
    if default is not None and not inside_meta:
        pruned, _unknown = pruning.prune_value(default, s, root=embedded)
        if pruned != default:
            errors.append(invalid(f"{path}.default", default, "must not have unknown fields"))
        for cause in value_causes(default, s, field=f"{path}.default"):
            errors.append(f"{cause.field}: {cause.message}")
    if isinstance(s.get("items"), dict):
        items_path = f"{path}.items"
        errors += _defaults(s["items"], items_path, inside_meta=inside_meta, embedded_root=False)
    for key, sub in as_dict(s.get("properties")).items():
        sub_meta = inside_meta or (embedded and key in META)
        sub_path = f"{path}.properties[{key}]"
        errors += _defaults(as_dict(sub), sub_path, inside_meta=sub_meta, embedded_root=False)
    return errors


_BODIES = {
    ": Required value": "FieldValueRequired",
    ": Forbidden: ": "FieldValueForbidden",
    ": Invalid value: ": "FieldValueInvalid",
    ": Unsupported value: ": "FieldValueNotSupported",
    ": Too long: ": "FieldValueTooLong",
    ": Too many: ": "FieldValueTooMany",
}


def structural_causes(schema: Any, *, path: str) -> list[Cause]:
    """`check_structural` as the causes of kube's 422 for the CRD: the field is the full path
    (pass `spec.versions[0].schema.openAPIV3Schema`), the message the error body after it."""
    causes = []
    for error in check_structural(schema, path=path):
        found = [(error.find(marker), marker) for marker in _BODIES if marker in error]
        if not found:  # not one of apimachinery's bodies; keep it whole rather than guess
            causes.append(Cause("FieldValueInvalid", error, path))
            continue
        at, marker = min(found)
        causes.append(Cause(_BODIES[marker], error[at + 2 :], error[:at]))
    return causes
