"""The contracts in proto/ follow Buf's STANDARD style rules and document every element.

The rules are checked on descriptors compiled with source info (so comments are visible), by
`style_violations`; a deliberately bad proto shows that each rule can fail.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO_ROOT / "proto"
# Kubernetes' vendored API definitions: not kvd contracts, and in Kubernetes' own style
VENDORED = "k8s"

PACKAGE = re.compile(r"kvd\.rpc\.[a-z][a-z0-9_]*\.v[1-9][0-9]*")
PASCAL_CASE = re.compile(r"[A-Z][A-Za-z0-9]*")
LOWER_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
UPPER_SNAKE_CASE = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")

# Field numbers in descriptor.proto, which make up source-info location paths.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE, FILE_SYNTAX = 4, 5, 6, 12
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM, MESSAGE_ONEOF = 2, 3, 4, 8
ENUM_VALUE, SERVICE_METHOD = 2, 2

LocationPath = tuple[int, ...]


def compile_protos(proto_dir: Path, out: Path) -> list[descriptor_pb2.FileDescriptorProto]:
    """Compile every kvd proto under `proto_dir`, keeping comments; only its own files come back."""
    protos = sorted(
        str(path)
        for path in proto_dir.rglob("*.proto")
        if not path.is_relative_to(proto_dir / VENDORED)
    )
    well_known_types = Path(grpc_tools.__file__).parent / "_proto"
    exit_code = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={proto_dir}",
            f"--proto_path={well_known_types}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *protos,
        ]
    )
    assert exit_code == 0, "protoc failed; its errors are in the captured stderr"
    return list(descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file)


def upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def style_violations(files: list[descriptor_pb2.FileDescriptorProto]) -> list[str]:
    violations: list[str] = []
    rpcs_by_type: dict[str, list[str]] = defaultdict(list)
    for file in files:
        violations += _file_violations(file)
        for service in file.service:
            for method in service.method:
                rpc = f"{file.package}.{service.name}.{method.name}"
                rpcs_by_type[method.input_type].append(f"{rpc} request")
                rpcs_by_type[method.output_type].append(f"{rpc} response")
    violations += [
        f"{type_name.lstrip('.')}: used by more than one RPC: {', '.join(rpcs)}"
        for type_name, rpcs in sorted(rpcs_by_type.items())
        if len(rpcs) > 1
    ]
    return violations


def _file_violations(file: descriptor_pb2.FileDescriptorProto) -> Iterator[str]:
    comments = {
        tuple(location.path): location.leading_comments.strip()
        for location in file.source_code_info.location
    }

    def undocumented(path: LocationPath, what: str) -> Iterator[str]:
        if not comments.get(path):
            yield f"{file.name}: {what}: no leading comment"

    directory, _, base = file.name.rpartition("/")
    if file.syntax != "proto3":
        yield f"{file.name}: syntax must be proto3, is {file.syntax or 'proto2'}"
    if not re.fullmatch(r"[a-z][a-z0-9_]*\.proto", base):
        yield f"{file.name}: file name must be lower_snake_case.proto"
    if not PACKAGE.fullmatch(file.package):
        yield f"{file.name}: package {file.package} is not kvd.rpc.<component>.v<N>"
    if file.package != directory.replace("/", "."):
        yield f"{file.name}: package {file.package} does not match its directory {directory}"
    yield from undocumented((FILE_SYNTAX,), "file header")

    for i, service in enumerate(file.service):
        path = (FILE_SERVICE, i)
        yield from undocumented(path, f"service {service.name}")
        if not service.name.endswith("Service") or not PASCAL_CASE.fullmatch(service.name):
            yield f"{file.name}: service {service.name}: must be PascalCase ending in Service"
        for j, method in enumerate(service.method):
            rpc = f"rpc {service.name}.{method.name}"
            yield from undocumented((*path, SERVICE_METHOD, j), rpc)
            for kind, actual in (("Request", method.input_type), ("Response", method.output_type)):
                wanted = f".{file.package}.{method.name}{kind}"
                if actual != wanted:
                    role = kind.lower()
                    yield f"{file.name}: {rpc}: {role} must be {wanted[1:]}, is {actual[1:]}"

    for i, message in enumerate(file.message_type):
        yield from _message_violations(file.name, message, (FILE_MESSAGE, i), comments)
    for i, enum in enumerate(file.enum_type):
        yield from _enum_violations(file.name, enum, (FILE_ENUM, i), comments)


def _message_violations(
    file_name: str,
    message: descriptor_pb2.DescriptorProto,
    path: LocationPath,
    comments: dict[LocationPath, str],
) -> Iterator[str]:
    def undocumented(at: LocationPath, what: str) -> Iterator[str]:
        if not comments.get(at):
            yield f"{file_name}: {what}: no leading comment"

    yield from undocumented(path, f"message {message.name}")
    if not PASCAL_CASE.fullmatch(message.name):
        yield f"{file_name}: message {message.name}: must be PascalCase"
    for i, field in enumerate(message.field):
        yield from undocumented((*path, MESSAGE_FIELD, i), f"field {message.name}.{field.name}")
        if not LOWER_SNAKE_CASE.fullmatch(field.name):
            yield f"{file_name}: field {message.name}.{field.name}: must be lower_snake_case"
    for i, oneof in enumerate(message.oneof_decl):
        yield from undocumented((*path, MESSAGE_ONEOF, i), f"oneof {message.name}.{oneof.name}")
        if not LOWER_SNAKE_CASE.fullmatch(oneof.name):
            yield f"{file_name}: oneof {message.name}.{oneof.name}: must be lower_snake_case"
    for i, nested in enumerate(message.nested_type):
        yield from _message_violations(file_name, nested, (*path, MESSAGE_NESTED, i), comments)
    for i, enum in enumerate(message.enum_type):
        yield from _enum_violations(file_name, enum, (*path, MESSAGE_ENUM, i), comments)


def _enum_violations(
    file_name: str,
    enum: descriptor_pb2.EnumDescriptorProto,
    path: LocationPath,
    comments: dict[LocationPath, str],
) -> Iterator[str]:
    if not comments.get(path):
        yield f"{file_name}: enum {enum.name}: no leading comment"
    if not PASCAL_CASE.fullmatch(enum.name):
        yield f"{file_name}: enum {enum.name}: must be PascalCase"
    prefix = upper_snake(enum.name) + "_"
    zero = enum.value[0]
    if zero.number != 0 or zero.name != f"{prefix}UNSPECIFIED":
        yield f"{file_name}: enum {enum.name}: first value must be {prefix}UNSPECIFIED = 0"
    for i, value in enumerate(enum.value):
        if not comments.get((*path, ENUM_VALUE, i)):
            yield f"{file_name}: enum value {value.name}: no leading comment"
        if not value.name.startswith(prefix) or not UPPER_SNAKE_CASE.fullmatch(value.name):
            yield (
                f"{file_name}: enum value {value.name}: "
                f"must be UPPER_SNAKE_CASE with prefix {prefix}"
            )


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> list[descriptor_pb2.FileDescriptorProto]:
    return compile_protos(PROTO_DIR, tmp_path_factory.mktemp("descriptors") / "contracts.pb")


def test_contracts_define_the_three_services(
    contracts: list[descriptor_pb2.FileDescriptorProto],
) -> None:
    services = {f"{file.package}.{service.name}" for file in contracts for service in file.service}

    assert services == {
        "kvd.rpc.launcher.v1.LauncherService",
        "kvd.rpc.handler.v1.HandlerService",
        "kvd.rpc.controller.v1.ControllerService",
    }


def test_contracts_follow_the_style_rules_and_document_every_element(
    contracts: list[descriptor_pb2.FileDescriptorProto],
) -> None:
    violations = style_violations(contracts)

    assert not violations, "\n".join(violations)


BAD_PROTO = """\
syntax = "proto3";

package kvd.rpc.elsewhere.v1;

service Bad {
  // Documented.
  rpc Get(Shared) returns (Shared);
  // Documented.
  rpc Put(PutRequest) returns (Shared);
}

// Documented.
message Shared {
  string Name = 1;
}

// Documented.
message PutRequest {
  // Documented.
  oneof choice {
    // Documented.
    string a = 1;
  }
}

// Documented.
enum Color {
  // Documented.
  RED = 0;
  // Documented.
  COLOR_BLUE = 1;
}
"""


def test_style_rules_reject_a_bad_contract(tmp_path: Path) -> None:
    proto_dir = tmp_path / "proto"
    bad = proto_dir / "kvd/rpc/bad/v1/bad.proto"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD_PROTO)

    violations = style_violations(compile_protos(proto_dir, tmp_path / "bad.pb"))

    name = "kvd/rpc/bad/v1/bad.proto"
    assert sorted(violations) == sorted(
        [
            f"{name}: package kvd.rpc.elsewhere.v1 does not match its directory kvd/rpc/bad/v1",
            f"{name}: file header: no leading comment",
            f"{name}: service Bad: no leading comment",
            f"{name}: service Bad: must be PascalCase ending in Service",
            f"{name}: rpc Bad.Get: request must be kvd.rpc.elsewhere.v1.GetRequest, "
            "is kvd.rpc.elsewhere.v1.Shared",
            f"{name}: rpc Bad.Get: response must be kvd.rpc.elsewhere.v1.GetResponse, "
            "is kvd.rpc.elsewhere.v1.Shared",
            f"{name}: rpc Bad.Put: response must be kvd.rpc.elsewhere.v1.PutResponse, "
            "is kvd.rpc.elsewhere.v1.Shared",
            "kvd.rpc.elsewhere.v1.Shared: used by more than one RPC: "
            "kvd.rpc.elsewhere.v1.Bad.Get request, kvd.rpc.elsewhere.v1.Bad.Get response, "
            "kvd.rpc.elsewhere.v1.Bad.Put response",
            f"{name}: field Shared.Name: no leading comment",
            f"{name}: field Shared.Name: must be lower_snake_case",
            f"{name}: enum Color: first value must be COLOR_UNSPECIFIED = 0",
            f"{name}: enum value RED: must be UPPER_SNAKE_CASE with prefix COLOR_",
        ]
    )
