"""Defaulting from a schema's `default`s, as apiextensions does it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kvd.local.apiserver.schema import (
    apply_defaults,
)
from tests.local.apiserver.schema.cases import (
    get,
    table,
)

# -- defaulting ----------------------------------------------------------------------------------

DEFAULTING = yaml.safe_load(
    """
type: object
properties:
  spec:
    type: object
    properties:
      replicas: {type: integer, default: 1}
      strategy:
        type: object
        properties:
          type: {type: string, default: Rolling}
          maxSurge: {type: integer, default: 1}
      policy: {type: object, default: {}, properties: {mode: {type: string, default: auto}}}
      ports:
        type: array
        items:
          type: object
          properties: {protocol: {type: string, default: TCP}, port: {type: integer}}
      labels: {type: object, additionalProperties: {type: string, default: none}}
      tags: {type: array, items: {type: string, default: t}}
      optional: {type: string, nullable: true, default: d}
      plain: {type: string}
      nullablePlain: {type: string, nullable: true}
"""
)
# What `spec: {}` becomes; each row lists the rest of its expected spec.
SPEC_DEFAULTS = {"replicas": 1, "policy": {"mode": "auto"}, "optional": "d"}
DEFAULTS = table(
    """
- {id: absent-parent-gets-nothing, obj: {}, want: {}}
- {id: defaulted-parent-gets-its-childrens-defaults, obj: {spec: {}}, want: {spec: {}}}
- id: present-object-gets-its-childrens-defaults
  obj: {spec: {strategy: {}}}
  want: {spec: {strategy: {type: Rolling, maxSurge: 1}}}
- id: set-values-win
  obj: {spec: {replicas: 3, policy: {mode: manual}}}
  want: {spec: {replicas: 3, policy: {mode: manual}}}
- {id: null-without-nullable-gets-the-default, obj: {spec: {replicas: null}}, want: {spec: {}}}
- {id: null-nullable-stays, obj: {spec: {optional: null}}, want: {spec: {optional: null}}}
- {id: null-without-default-is-dropped, obj: {spec: {plain: null}}, want: {spec: {}}}
- id: null-nullable-without-default-stays
  obj: {spec: {nullablePlain: null}}
  want: {spec: {nullablePlain: null}}
- id: array-items
  obj: {spec: {ports: [{port: 80}, {protocol: UDP}]}}
  want: {spec: {ports: [{port: 80, protocol: TCP}, {protocol: UDP}]}}
- id: map-values
  obj: {spec: {labels: {a: null, b: x}}}
  want: {spec: {labels: {a: none, b: x}}}
- {id: null-array-items, obj: {spec: {tags: [null, x]}}, want: {spec: {tags: [t, x]}}}
- {id: unknown-fields-left-to-pruning, obj: {spec: {unknown: null}}, want: {spec: {unknown: null}}}
""",
    "obj",
    "want",
)


@pytest.mark.parametrize(("obj", "expected"), DEFAULTS)
def test_apply_defaults(obj: Any, expected: Any) -> None:
    if "spec" in expected:
        expected["spec"] = {**SPEC_DEFAULTS, **expected["spec"]}
    before = yaml.safe_dump(obj)
    result = apply_defaults(obj, DEFAULTING)
    assert result == expected
    assert yaml.safe_dump(obj) == before, "apply_defaults must not change its input"
    assert apply_defaults(result, DEFAULTING) == result


def test_defaults_are_copies() -> None:
    first = apply_defaults({"spec": {}}, DEFAULTING)
    first["spec"]["policy"]["mode"] = "changed"
    assert apply_defaults({"spec": {}}, DEFAULTING)["spec"]["policy"] == {"mode": "auto"}
    assert get(DEFAULTING, "properties.spec.properties.policy.default") == {}
