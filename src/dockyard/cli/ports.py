"""Port specs of ``-p``/``--expose`` (github.com/docker/go-connections/nat), pure.

``parse_port_specs(["127.0.0.1:8080:80/udp"])`` gives the create body's ``ExposedPorts`` and
``PortBindings`` exactly as the docker CLI builds them, with nat's error messages.
"""

from __future__ import annotations

import ipaddress

_PROTOS = ("tcp", "udp", "sctp")


def split_proto_port(raw: str) -> tuple[str, str]:
    """nat.SplitProtoPort: "80/udp" -> ("udp", "80"); no protocol means tcp."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1:
        return "tcp", raw
    if not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _parse_uint16(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def parse_port_range(ports: str) -> tuple[int, int]:
    """nat.ParsePortRange: "80" or "8000-8010"."""
    if ports == "":
        raise ValueError("empty string specified for ports")
    if "-" not in ports:
        value = _parse_uint16(ports)
        return value, value
    parts = ports.split("-")
    start, end = _parse_uint16(parts[0]), _parse_uint16(parts[1])
    if end < start:
        raise ValueError(f"invalid range specified for port: {ports}")
    return start, end


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    n = len(parts)
    if n == 1:
        return "", "", parts[0]
    if n == 2:
        return "", parts[0], parts[1]
    if n == 3:
        return parts[0], parts[1], parts[2]
    return ":".join(parts[:n - 2]), parts[n - 2], parts[n - 1]


def parse_port_spec(raw: str) -> list[tuple[str, dict[str, str]]]:
    """nat.ParsePortSpec: [(port "80/tcp", binding {"HostIp", "HostPort"}), ...]."""
    ip, host_port, container_port = _split_parts(raw)
    proto, container_port = split_proto_port(container_port)
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise ValueError(f"invalid IP address {ip}: address {ip}:: missing ']' in address")
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError(f"invalid IP address: {ip}") from None
    if container_port == "":
        raise ValueError(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container_port)
    except ValueError:
        raise ValueError(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except ValueError:
            raise ValueError(f"invalid hostPort: {host_port}") from None
        if end - start != host_end - host_start and end != start:
            raise ValueError(f"invalid ranges specified for container and host Ports: "
                             f"{container_port} and {host_port}")
    proto = proto.lower()
    if proto not in _PROTOS:
        raise ValueError(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        hp = str(host_start + i) if host_port else ""
        if start == end and host_start != host_end:
            hp = f"{hp}-{host_end}"
        out.append((f"{start + i}/{proto}", {"HostIp": ip, "HostPort": hp}))
    return out


def parse_port_specs(specs: list[str]) -> tuple[dict[str, dict], dict[str, list[dict[str, str]]]]:
    """nat.ParsePortSpecs: (ExposedPorts, PortBindings)."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in map(_standard_notation, specs):
        for port, binding in parse_port_spec(spec):
            exposed.setdefault(port, {})
            bindings.setdefault(port, []).append(binding)
    return exposed, bindings


def _standard_notation(spec: str) -> str:
    """convertToStandardNotation: "published=8080,target=80,protocol=udp" -> "8080:80/udp"."""
    if "=" not in spec:
        return spec
    params = {"protocol": "tcp"}
    for param in spec.split(","):
        key, eq, value = param.partition("=")
        if not eq:
            raise ValueError(f"invalid publish opts format (should be name=value but got "
                             f"'{param}')")
        params[key] = value
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"
