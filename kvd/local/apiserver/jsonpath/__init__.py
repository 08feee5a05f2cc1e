"""Kubernetes' JSONPath (client-go's ``util/jsonpath``), for printer columns and tables.

An expression is parsed once (``parser``: text to a tree of steps, with client-go's error
wording) and evaluated many times (``evaluator``: ``compile(...).find(obj)``, once per row of a
table); ``format_cell`` (``cells``) turns a result into a cell as kube-apiserver's CRD table
converter does. Callers import this package, not its modules.
"""

from __future__ import annotations

from kvd.local.apiserver.jsonpath.cells import format_cell
from kvd.local.apiserver.jsonpath.evaluator import JSONPath, JSONPathError, compile

__all__ = ["JSONPath", "JSONPathError", "compile", "format_cell"]
