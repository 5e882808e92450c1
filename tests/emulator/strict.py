"""The emulator refuses what AWS refuses: every request is checked against
botocore's service model of its operation before moto sees it.

AWS validates a request against the constraints of its API model (required
members, string and collection lengths, patterns, enums, numeric ranges)
and answers in the protocol's own way:

- JSON protocols (SSM, ...): `ValidationException`, listing every violation
  in the wording of the AWS services' common validator: "1 validation error
  detected: Value 'x' at 'comment' failed to satisfy constraint: Member must
  have length less than or equal to 100", several joined by "; " after "N
  validation errors detected:" (the wording seen in AWS answers, e.g.
  aws-cli/SDK issue reports; the code is listed in each service's
  Common Errors page, e.g.
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/CommonErrors.html).
  Paths name members in lower camel case, list elements as `name.N.member`;
  a list of scalars, a map's keys and a map's values are reported at the
  collection with every constraint of the element ("Member must satisfy
  constraint: [...]", "Map keys must satisfy constraint: [...]").
- Query protocol (SNS, ...): the same message with the code `ValidationError`
  (https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html).
- EC2: the first violation only, `MissingParameter` ("The request must
  contain the parameter ImageId") for a missing required member and
  `InvalidParameterValue` for the others ("Invalid value 'x' for
  InstanceType." for an enum)
  (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).
  The wording of EC2's length and pattern refusals is not documented; they
  are phrased as EC2's other value errors ("Value (x) for parameter y is
  invalid. ...").
- REST protocols: as the JSON and query protocols (`ValidationException`
  for rest-json, `ValidationError` for rest-xml).

Patterns are searched, not anchored (Smithy: "patterns are not implicitly
anchored"); a pattern Python's `regex` cannot compile is skipped. Values of
the wrong type are left to moto. An operation the model does not know, or a
request that names no service, passes through unchanged.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import regex
from botocore.loaders import Loader
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

MISSING: Any = object()
_loader = Loader()


@dataclass
class Violation:
    missing: bool
    path: str  # lower camel case member path, as AWS's common validator names it
    wire: str  # the query parameter name (EC2's messages use it)
    value: Any
    constraint: str
    sensitive: bool = False

    def coral(self) -> str:
        if self.value is MISSING or self.value is None:
            shown = "Value null"
        elif self.sensitive:
            shown = "Value"
        else:
            shown = f"Value '{_render(self.value)}'"
        return f"{shown} at '{self.path}' failed to satisfy constraint: {self.constraint}"


@dataclass
class Refusal:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _render(value: Any) -> str:
    """A value as Java's toString prints it in AWS's messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


# --- Models -------------------------------------------------------------------


@functools.cache
def _service_names() -> frozenset[str]:
    return frozenset(_loader.list_available_services("service-2"))


@functools.cache
def _signing_index() -> dict[str, str]:
    """signing name / endpoint prefix -> botocore service name, for the few
    services whose signing name is not their model's name (built once)."""
    index: dict[str, str] = {}
    for name in sorted(_service_names()):
        metadata = _loader.load_service_model(name, "service-2").get("metadata", {})
        for key in (metadata.get("signingName"), metadata.get("endpointPrefix")):
            if key:
                index.setdefault(key, name)
    return index


@functools.cache
def service_model(name: str) -> ServiceModel | None:
    if name not in _service_names():
        name = _signing_index().get(name, "")
        if not name:
            return None
    return ServiceModel(_loader.load_service_model(name, "service-2"), name)


# --- Decoding the query protocols ---------------------------------------------


class _Query:
    """The flattened parameters of a query or EC2 request, decoded into
    nested values along the input shape (botocore's serializers, reversed)."""

    def __init__(self, params: dict[str, str], ec2: bool) -> None:
        self.params = params
        self.ec2 = ec2
        self.prefixes: set[str] = set()
        for key in params:
            parts = key.split(".")
            for n in range(1, len(parts) + 1):
                self.prefixes.add(".".join(parts[:n]))

    def name(self, shape: Shape, default: str | None) -> str | None:
        if self.ec2:
            if "queryName" in shape.serialization:
                return shape.serialization["queryName"]
            if "name" in shape.serialization:
                name = shape.serialization["name"]
                return name[0].upper() + name[1:]
            return default
        return shape.serialization.get("name", default)

    def decode(self, shape: Shape, prefix: str) -> Any:
        if isinstance(shape, StructureShape):
            if prefix and prefix not in self.prefixes:
                return MISSING
            out: dict[str, Any] = {}
            for member, member_shape in shape.members.items():
                key = self.name(member_shape, member)
                value = self.decode(member_shape, f"{prefix}.{key}" if prefix else str(key))
                if value is not MISSING:
                    out[member] = value
            return out
        if isinstance(shape, ListShape):
            if not self.ec2 and self.params.get(prefix) == "":
                return []
            if self.ec2:
                base = prefix
            elif shape.serialization.get("flattened"):
                location = self.name(shape.member, None)
                base = ".".join(prefix.split(".")[:-1] + [location]) if location else prefix
            else:
                base = f"{prefix}.{self.name(shape.member, 'member')}"
            items: list[Any] = []
            while f"{base}.{len(items) + 1}" in self.prefixes:
                items.append(self.decode(shape.member, f"{base}.{len(items) + 1}"))
            return items if items else MISSING
        if isinstance(shape, MapShape):
            base = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
            key_name, value_name = self.name(shape.key, "key"), self.name(shape.value, "value")
            entries: dict[Any, Any] = {}
            n = 1
            while f"{base}.{n}" in self.prefixes:
                key = self.decode(shape.key, f"{base}.{n}.{key_name}")
                entries[key] = self.decode(shape.value, f"{base}.{n}.{value_name}")
                n += 1
            return entries if entries else MISSING
        return self.params.get(prefix, MISSING)


def _from_json(shape: Shape, value: Any) -> Any:
    """A JSON body keyed by member names (a member may be renamed on the wire)."""
    if isinstance(shape, StructureShape) and isinstance(value, dict) and not shape.is_document_type:
        out = {}
        for member, member_shape in shape.members.items():
            wire = member_shape.serialization.get("name", member)
            if wire in value:
                out[member] = _from_json(member_shape, value[wire])
        return out
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_from_json(shape.member, v) for v in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {k: _from_json(shape.value, v) for k, v in value.items()}
    return value


# --- Checking -------------------------------------------------------------------


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _number(shape: Shape, value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value) if shape.type_name in ("integer", "long", "short", "byte") else float(value)
        except ValueError:
            return None
    return None


def _shown(bound: Any) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def scalar_constraints(shape: Shape) -> list[str]:
    """Every constraint of a scalar shape, in the order AWS lists them."""
    meta = shape.metadata
    out = []
    if shape.type_name in ("string", "blob"):
        if "max" in meta:
            out.append(f"Member must have length less than or equal to {_shown(meta['max'])}")
        if "min" in meta:
            out.append(f"Member must have length greater than or equal to {_shown(meta['min'])}")
        if "pattern" in meta:
            out.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
        if shape.enum:
            out.append(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
    elif shape.type_name in ("integer", "long", "short", "byte", "float", "double"):
        if "max" in meta:
            out.append(f"Member must have value less than or equal to {_shown(meta['max'])}")
        if "min" in meta:
            out.append(f"Member must have value greater than or equal to {_shown(meta['min'])}")
    return out


@functools.lru_cache(maxsize=4096)
def _pattern(source: str) -> Any:
    try:
        return regex.compile(source)
    except regex.error:
        return None


def scalar_violations(shape: Shape, value: Any) -> list[str]:
    """The constraints of a scalar shape this value breaks (empty if none,
    or if the value is not of the shape's type)."""
    meta = shape.metadata
    broken = []
    if shape.type_name == "string" and isinstance(value, str):
        pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.search(value):
            broken.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
        if "max" in meta and len(value) > meta["max"]:
            broken.append(f"Member must have length less than or equal to {_shown(meta['max'])}")
        if "min" in meta and len(value) < meta["min"]:
            broken.append(f"Member must have length greater than or equal to {_shown(meta['min'])}")
        if shape.enum and value not in shape.enum:
            broken.append(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
    elif shape.type_name == "blob" and isinstance(value, (str, bytes)):
        size = len(value) if isinstance(value, bytes) else len(value.encode())
        if "max" in meta and size > meta["max"]:
            broken.append(f"Member must have length less than or equal to {_shown(meta['max'])}")
        if "min" in meta and size < meta["min"]:
            broken.append(f"Member must have length greater than or equal to {_shown(meta['min'])}")
    elif shape.type_name in ("integer", "long", "short", "byte", "float", "double"):
        number = _number(shape, value)
        if number is not None:
            if "max" in meta and number > meta["max"]:
                broken.append(f"Member must have value less than or equal to {_shown(meta['max'])}")
            if "min" in meta and number < meta["min"]:
                broken.append(f"Member must have value greater than or equal to {_shown(meta['min'])}")
    return broken


def _collection_violations(shape: Shape, value: Any) -> list[str]:
    """A list or map value's own length constraints it breaks."""
    meta = shape.metadata
    size = len(value)
    broken = []
    if "max" in meta and size > meta["max"]:
        broken.append(f"Member must have length less than or equal to {_shown(meta['max'])}")
    if "min" in meta and size < meta["min"]:
        broken.append(f"Member must have length greater than or equal to {_shown(meta['min'])}")
    return broken


def _is_scalar(shape: Shape) -> bool:
    return not isinstance(shape, (StructureShape, ListShape, MapShape))


def check(shape: Shape, value: Any, path: str, wire: str, ec2: bool, out: list[Violation]) -> None:
    """Appends every violation of `value` (decoded along `shape`) to `out`."""
    sensitive = bool(shape.metadata.get("sensitive"))
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict) or shape.is_document_type:
            return
        for member in shape.required_members:
            if value.get(member) is None:
                name = _wire_name(shape.members[member], member, ec2)
                out.append(
                    Violation(
                        True, _join(path, _lower_camel(member)), _join(wire, name), MISSING, "Member must not be null"
                    )
                )
        for member, member_shape in shape.members.items():
            if value.get(member) is None:
                continue
            name = _wire_name(member_shape, member, ec2)
            check(member_shape, value[member], _join(path, _lower_camel(member)), _join(wire, name), ec2, out)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            return
        for constraint in _collection_violations(shape, value):
            out.append(Violation(False, path, wire, value, constraint, sensitive))
        member = shape.member
        if _is_scalar(member):
            if any(scalar_violations(member, item) for item in value if item is not None):
                joined = ", ".join(scalar_constraints(member))
                out.append(
                    Violation(False, path, wire, value, f"Member must satisfy constraint: [{joined}]", sensitive)
                )
            return
        for n, item in enumerate(value, start=1):
            check(member, item, f"{path}.{n}.member", f"{wire}.{n}", ec2, out)
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return
        for constraint in _collection_violations(shape, value):
            out.append(Violation(False, path, wire, value, constraint, sensitive))
        if any(scalar_violations(shape.key, key) for key in value):
            joined = ", ".join(scalar_constraints(shape.key))
            out.append(Violation(False, path, wire, value, f"Map keys must satisfy constraint: [{joined}]", sensitive))
        if _is_scalar(shape.value) and any(scalar_violations(shape.value, v) for v in value.values()):
            joined = ", ".join(scalar_constraints(shape.value))
            out.append(Violation(False, path, wire, value, f"Map value must satisfy constraint: [{joined}]", sensitive))
        elif isinstance(shape.value, ListShape):
            inner: list[Violation] = []
            for item in value.values():
                check(shape.value, item, path, wire, ec2, inner)
            if inner:
                joined = ", ".join(v.constraint for v in inner)
                out.append(
                    Violation(False, path, wire, value, f"Map value must satisfy constraint: [{joined}]", sensitive)
                )
        elif isinstance(shape.value, (StructureShape, MapShape)):
            for key, item in value.items():
                check(shape.value, item, f"{path}.{key}", f"{wire}.{key}", ec2, out)
    else:
        for constraint in scalar_violations(shape, value):
            out.append(Violation(False, path, wire, value, constraint, sensitive))


def _wire_name(shape: Shape, member: str, ec2: bool) -> str:
    if ec2:
        if "queryName" in shape.serialization:
            return shape.serialization["queryName"]
        if "name" in shape.serialization:
            name = shape.serialization["name"]
            return name[0].upper() + name[1:]
    return member


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def violations(operation: OperationModel, value: Any, ec2: bool) -> list[Violation]:
    out: list[Violation] = []
    if operation.input_shape is not None:
        check(operation.input_shape, value if isinstance(value, dict) else {}, "", "", ec2, out)
    return out


# --- Answers ------------------------------------------------------------------------


def coral_message(found: list[Violation]) -> str:
    count = len(found)
    noun = "validation error" if count == 1 else "validation errors"
    return f"{count} {noun} detected: " + "; ".join(v.coral() for v in found)


def ec2_error(found: list[Violation]) -> tuple[str, str]:
    first = found[0]
    if first.missing:
        return "MissingParameter", f"The request must contain the parameter {first.wire}"
    if first.constraint.startswith("Member must satisfy enum value set"):
        return "InvalidParameterValue", f"Invalid value '{_render(first.value)}' for {first.wire}."
    reason = first.constraint.replace("Member must", "It must", 1)
    return (
        "InvalidParameterValue",
        f"Value ({_render(first.value)}) for parameter {_lower_camel(first.wire)} is invalid. {reason}.",
    )


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def refusal(protocol: str, service: ServiceModel, found: list[Violation]) -> Refusal:
    if protocol == "ec2":
        code, message = ec2_error(found)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{_xml(message)}</Message></Error></Errors>"
            "<RequestID>lifeboat-emulator</RequestID></Response>"
        )
        return Refusal(400, [("Content-Type", "text/xml")], body.encode())
    message = coral_message(found)
    if protocol == "json":
        version = service.metadata.get("jsonVersion", "1.1")
        body = json.dumps({"__type": "ValidationException", "message": message})
        return Refusal(400, [("Content-Type", f"application/x-amz-json-{version}")], body.encode())
    if protocol == "rest-json":
        body = json.dumps({"message": message})
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ValidationException")]
        return Refusal(400, headers, body.encode())
    namespace = service.metadata.get("xmlNamespace") or ""
    body = (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type><Code>ValidationError</Code>'
        f"<Message>{_xml(message)}</Message></Error><RequestId>lifeboat-emulator</RequestId></ErrorResponse>"
    )
    return Refusal(400, [("Content-Type", "text/xml")], body.encode())


# --- Requests -----------------------------------------------------------------------


def _signing_service(environ: dict[str, Any]) -> str | None:
    """The service a SigV4-signed request is for (its credential scope)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        scope = auth.split(",")[0].split()[1]
        return scope.split("/")[3].lower()
    except IndexError:
        return None


def _rest_decode(service: ServiceModel, environ: dict[str, Any], body: bytes) -> tuple[OperationModel, Any] | None:
    """A REST request's operation and input, decoded by moto's own router and
    parsers (path labels, query string, headers and body)."""
    import io

    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.request import Request
    from moto.core.routing import get_service_router

    copy = dict(environ)
    copy["wsgi.input"] = io.BytesIO(body)
    request = Request(copy)
    try:
        operation, uri_params = get_service_router(service.service_name).match(request)
        parser = PROTOCOL_PARSERS[service.protocol](operation)
        parsed = parser.parse(
            {
                "method": request.method,
                "values": request.values,
                "headers": request.headers,
                "body": body,
                "url_path": request.path,
                "url_params": uri_params,
            }
        )
    except Exception:  # noqa: BLE001 - not a request moto can route: not ours to judge
        return None
    return operation, parsed


@dataclass
class Decoded:
    """A request as its service's model reads it: the operation and its
    input, keyed by the model's member names."""

    service: ServiceModel
    protocol: str  # json, query, ec2, rest-json or rest-xml
    operation: OperationModel
    value: Any


def decode(environ: dict[str, Any], body: bytes) -> Decoded | None:
    """The operation and input of a signed request, or None when no model
    reads it (an unknown service or operation, a body of another shape)."""
    name = _signing_service(environ)
    service = service_model(name) if name else None
    if service is None:
        return None
    content_type = environ.get("CONTENT_TYPE", "")
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target and "json" in content_type:
        protocol = "json"
        try:
            operation = service.operation_model(target.rsplit(".", 1)[-1])
            value = _from_json(operation.input_shape, json.loads(body or b"{}")) if operation.input_shape else {}
        except Exception:  # noqa: BLE001 - unknown operation or not JSON: moto answers
            return None
    elif content_type.startswith("application/x-www-form-urlencoded"):
        protocol = "ec2" if service.protocol == "ec2" else "query"
        params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            operation = service.operation_model(params.get("Action", ""))
        except Exception:  # noqa: BLE001 - unknown operation: passes through
            return None
        value = _Query(params, ec2=protocol == "ec2").decode(operation.input_shape, "") if operation.input_shape else {}
    elif service.protocol in ("rest-json", "rest-xml"):
        protocol = service.protocol
        decoded = _rest_decode(service, environ, body)
        if decoded is None:
            return None
        operation, value = decoded
    else:
        return None
    return Decoded(service, protocol, operation, value)


def judge(environ: dict[str, Any], body: bytes) -> Refusal | None:
    """The refusal AWS would answer this request with, or None to let it through."""
    decoded = decode(environ, body)
    if decoded is None or decoded.operation.input_shape is None:
        return None
    found = violations(decoded.operation, decoded.value, ec2=decoded.protocol == "ec2")
    return refusal(decoded.protocol, decoded.service, found) if found else None
