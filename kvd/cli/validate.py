"""`kvd validate -f FILE`: what kvd would make of a manifest, without a cluster.

Each YAML document is parsed, defaulted and validated exactly as the API boundary does it. Valid
objects are printed back as YAML with KubeVirt's defaults filled in; invalid ones list every
field error on stderr, and deprecated fields (still accepted) are warned about there, as
kubectl shows the API server's warnings. The exit status is 1 when any document is invalid.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO

import yaml

from kvd.api import codec, deprecations, kinds
from kvd.api.errors import ValidationError
from kvd.cli import program


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="parse, default and validate kubevirt.io manifests",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f", "--filename", required=True, help="manifest file, or - for standard input"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.filename == "-":
            text = sys.stdin.read()
        else:
            with open(args.filename, encoding="utf-8") as stream:
                text = stream.read()
    except OSError as exc:
        raise program.CommandError(f"cannot read {args.filename}: {exc.strerror}") from None
    return validate_text(text, source=args.filename, out=sys.stdout, err=sys.stderr)


def validate_text(text: str, *, source: str, out: IO[str], err: IO[str]) -> int:
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        print(f"error: {source}: not valid YAML: {exc}", file=err)
        return 1
    if not documents:
        print(f"error: {source}: no objects found", file=err)
        return 1
    failed = False
    valid = []
    for index, document in enumerate(documents):
        for warning in deprecations.warnings(document):
            print(f"Warning: {_identify(document, index)}: {warning}", file=err)
        try:
            valid.append(codec.encode(kinds.load(document)))
        except ValidationError as exc:
            failed = True
            print(f"error: {source}: {_identify(document, index)} is invalid:", file=err)
            for error in exc.errors:
                print(f"  {error}", file=err)
    if valid:
        yaml.dump_all(valid, out, Dumper=_Dumper, sort_keys=False)
    return 1 if failed else 0


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (user-data scripts) as literal blocks, as a person would."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _identify(document: object, index: int) -> str:
    if isinstance(document, dict):
        kind = document.get("kind")
        meta = document.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(kind, str) and isinstance(name, str):
            return f"{kind} {name!r} (document {index + 1})"
    return f"document {index + 1}"
