"""kubevirt.io API types: parse, default, validate, serialise; CRD schemas from the same source.

The dataclasses in `vmi` and `vm` are the one description of the API. `kinds.load` is the
pipeline every boundary uses; `codec.encode` writes an object back as JSON-ready data.
"""
