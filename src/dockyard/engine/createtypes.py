"""The Go types dockerd decodes a create (and an exec create) request into, as data, and a
check of a decoded JSON body against them with the answers of Go's encoding/json.

dockerd decodes ``POST /containers/create`` into runconfig's ContainerConfigWrapper (Config
embedded, HostConfig, NetworkingConfig) before anything else; a value of the wrong JSON type
fails the request there, with ``json: cannot unmarshal string into Go struct field
HostConfig.HostConfig.Privileged of type bool``. Without this check a Python reader would take
``"Privileged": "false"`` as true. `parse_create_body` and `parse_exec_body` raise
InvalidArgument with that message and return the body as Go would have read it: struct field
names matched case-insensitively and spelled as Go spells them, a StrSlice given as a string
made a one-element list, a null list or map element made its zero value. Unknown keys are kept
(Go ignores them). Pure: no I/O.

Go's decoder rules reproduced (encoding/json decode.go):
- null is accepted for every type (pointers, slices and maps become nil, scalars keep zero);
- a number into an integer must be an integer literal in range, else ``number <literal>``;
- the first type error in document order is the one reported (the decode goes on, saving it),
  except that a StrSlice's own UnmarshalJSON error stops the decode and wins;
- the error names the innermost struct type and the path of field names from the root (map
  keys and slice indexes are not part of it).
Type names are the ones of dockerd 20.10 (the reference the answers were compared with), with
the fields API 1.51 added typed as Docker 28 has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.errdefs import InvalidArgument


# -- the kinds of Go types ---------------------------------------------------------------------

@dataclass(frozen=True)
class Scalar:
    """bool, string or an integer type; ``name`` as Go prints the type (``container.IpcMode``)."""
    kind: str                       # "bool", "string", "int", "uint"
    name: str
    bits: int = 64


@dataclass(frozen=True)
class Slice:
    elem: object
    name: str


@dataclass(frozen=True)
class Array:
    """A fixed-size Go array (``[2]uint``): extra JSON elements dropped, missing ones zero."""
    elem: object
    size: int
    name: str


@dataclass(frozen=True)
class Map:
    """map[string]T; the keys of a JSON object are always strings."""
    elem: object
    name: str


@dataclass(frozen=True)
class Struct:
    name: str                       # package.Type, as in "of type container.RestartPolicy"
    fields: Mapping[str, object] = field(default_factory=dict)
    # field names by their lower case (Go matches JSON keys case-insensitively), made once
    folded: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folded", {name.lower(): name for name in self.fields})

    @property
    def short(self) -> str:
        """The type's own name, the first part of "Go struct field HostConfig.Privileged"."""
        return self.name.rpartition(".")[2]


@dataclass(frozen=True)
class Ptr:
    """*T: null stays null where a T would be its zero value."""
    elem: object


@dataclass(frozen=True)
class StrSlice:
    """strslice.StrSlice: a string or an array of strings, with an UnmarshalJSON of its own."""


BOOL = Scalar("bool", "bool")
STRING = Scalar("string", "string")
INT = Scalar("int", "int")
INT64 = Scalar("int", "int64")
UINT16 = Scalar("uint", "uint16", 16)
UINT64 = Scalar("uint", "uint64")
DURATION = Scalar("int", "time.Duration")
STRINGS = Slice(STRING, "[]string")
STRING_MAP = Map(STRING, "map[string]string")
STR_SLICE = StrSlice()
EMPTY_STRUCT = Struct("struct {}")


def _named(name: str) -> Scalar:
    """A named string type (container.NetworkMode...)."""
    return Scalar("string", name)


# -- Docker's types (api/types/container, mount, network; go-connections/nat; go-units) -------

HEALTH_CONFIG = Struct("container.HealthConfig", {
    "Test": STRINGS, "Interval": DURATION, "Timeout": DURATION, "StartPeriod": DURATION,
    "StartInterval": DURATION, "Retries": INT,
})

CONFIG_FIELDS = {
    "Hostname": STRING, "Domainname": STRING, "User": STRING, "AttachStdin": BOOL,
    "AttachStdout": BOOL, "AttachStderr": BOOL,
    "ExposedPorts": Map(EMPTY_STRUCT, "nat.PortSet"),
    "Tty": BOOL, "OpenStdin": BOOL, "StdinOnce": BOOL, "Env": STRINGS, "Cmd": STR_SLICE,
    "Healthcheck": Ptr(HEALTH_CONFIG), "ArgsEscaped": BOOL, "Image": STRING,
    "Volumes": Map(EMPTY_STRUCT, "map[string]struct {}"), "WorkingDir": STRING,
    "Entrypoint": STR_SLICE, "NetworkDisabled": BOOL, "MacAddress": STRING, "OnBuild": STRINGS,
    "Labels": STRING_MAP, "StopSignal": STRING, "StopTimeout": Ptr(INT), "Shell": STR_SLICE,
}

_DRIVER = Struct("mount.Driver", {"Name": STRING, "Options": STRING_MAP})
MOUNT = Struct("mount.Mount", {
    "Type": _named("mount.Type"), "Source": STRING, "Target": STRING, "ReadOnly": BOOL,
    "Consistency": _named("mount.Consistency"),
    "BindOptions": Ptr(Struct("mount.BindOptions", {
        "Propagation": _named("mount.Propagation"), "NonRecursive": BOOL,
        "CreateMountpoint": BOOL, "ReadOnlyNonRecursive": BOOL, "ReadOnlyForceRecursive": BOOL,
    })),
    "VolumeOptions": Ptr(Struct("mount.VolumeOptions", {
        "NoCopy": BOOL, "Labels": STRING_MAP, "Subpath": STRING, "DriverConfig": Ptr(_DRIVER),
    })),
    "ImageOptions": Ptr(Struct("mount.ImageOptions", {"Subpath": STRING})),
    "TmpfsOptions": Ptr(Struct("mount.TmpfsOptions", {
        "SizeBytes": INT64, "Mode": Scalar("uint", "fs.FileMode", 32),
        "Options": Slice(STRINGS, "[][]string"),
    })),
    "ClusterOptions": Ptr(Struct("mount.ClusterOptions")),
})

_PORT_BINDING = Struct("nat.PortBinding", {"HostIp": STRING, "HostPort": STRING})
_WEIGHT_DEVICE = Struct("blkiodev.WeightDevice", {"Path": STRING, "Weight": UINT16})
_THROTTLE_DEVICE = Struct("blkiodev.ThrottleDevice", {"Path": STRING, "Rate": UINT64})
_THROTTLES = Slice(Ptr(_THROTTLE_DEVICE), "[]*blkiodev.ThrottleDevice")

RESOURCES_FIELDS = {  # container.Resources, embedded in HostConfig
    "CpuShares": INT64, "Memory": INT64, "NanoCpus": INT64, "CgroupParent": STRING,
    "BlkioWeight": UINT16,
    "BlkioWeightDevice": Slice(Ptr(_WEIGHT_DEVICE), "[]*blkiodev.WeightDevice"),
    "BlkioDeviceReadBps": _THROTTLES, "BlkioDeviceWriteBps": _THROTTLES,
    "BlkioDeviceReadIOps": _THROTTLES, "BlkioDeviceWriteIOps": _THROTTLES,
    "CpuPeriod": INT64, "CpuQuota": INT64, "CpuRealtimePeriod": INT64,
    "CpuRealtimeRuntime": INT64, "CpusetCpus": STRING, "CpusetMems": STRING,
    "Devices": Slice(Struct("container.DeviceMapping", {
        "PathOnHost": STRING, "PathInContainer": STRING, "CgroupPermissions": STRING,
    }), "[]container.DeviceMapping"),
    "DeviceCgroupRules": STRINGS,
    "DeviceRequests": Slice(Struct("container.DeviceRequest", {
        "Driver": STRING, "Count": INT, "DeviceIDs": STRINGS,
        "Capabilities": Slice(STRINGS, "[][]string"), "Options": STRING_MAP,
    }), "[]container.DeviceRequest"),
    "KernelMemory": INT64, "KernelMemoryTCP": INT64, "MemoryReservation": INT64,
    "MemorySwap": INT64, "MemorySwappiness": Ptr(INT64), "OomKillDisable": Ptr(BOOL),
    "PidsLimit": Ptr(INT64),
    "Ulimits": Slice(Ptr(Struct("units.Ulimit", {"Name": STRING, "Hard": INT64, "Soft": INT64})),
                     "[]*units.Ulimit"),
    "CpuCount": INT64, "CpuPercent": INT64, "IOMaximumIOps": UINT64, "IOMaximumBandwidth": UINT64,
}

HOST_CONFIG = Struct("container.HostConfig", {
    "Binds": STRINGS, "ContainerIDFile": STRING,
    "LogConfig": Struct("container.LogConfig", {"Type": STRING, "Config": STRING_MAP}),
    "NetworkMode": _named("container.NetworkMode"),
    "PortBindings": Map(Slice(_PORT_BINDING, "[]nat.PortBinding"), "nat.PortMap"),
    "RestartPolicy": Struct("container.RestartPolicy",
                            {"Name": STRING, "MaximumRetryCount": INT}),
    "AutoRemove": BOOL, "VolumeDriver": STRING, "VolumesFrom": STRINGS,
    "ConsoleSize": Array(Scalar("uint", "uint"), 2, "[2]uint"), "Annotations": STRING_MAP,
    "CapAdd": STR_SLICE, "CapDrop": STR_SLICE, "CgroupnsMode": _named("container.CgroupnsMode"),
    "Dns": STRINGS, "DnsOptions": STRINGS, "DnsSearch": STRINGS, "ExtraHosts": STRINGS,
    "GroupAdd": STRINGS, "IpcMode": _named("container.IpcMode"),
    "Cgroup": _named("container.CgroupSpec"), "Links": STRINGS, "OomScoreAdj": INT,
    "PidMode": _named("container.PidMode"), "Privileged": BOOL, "PublishAllPorts": BOOL,
    "ReadonlyRootfs": BOOL, "SecurityOpt": STRINGS, "StorageOpt": STRING_MAP,
    "Tmpfs": STRING_MAP, "UTSMode": _named("container.UTSMode"),
    "UsernsMode": _named("container.UsernsMode"), "ShmSize": INT64, "Sysctls": STRING_MAP,
    "Runtime": STRING, "Isolation": _named("container.Isolation"), **RESOURCES_FIELDS,
    "Mounts": Slice(MOUNT, "[]mount.Mount"), "MaskedPaths": STRINGS, "ReadonlyPaths": STRINGS,
    "Init": Ptr(BOOL),
})

ENDPOINT_SETTINGS = Struct("network.EndpointSettings", {
    "IPAMConfig": Ptr(Struct("network.EndpointIPAMConfig", {
        "IPv4Address": STRING, "IPv6Address": STRING, "LinkLocalIPs": STRINGS,
    })),
    "Links": STRINGS, "Aliases": STRINGS, "MacAddress": STRING, "DriverOpts": STRING_MAP,
    "GwPriority": INT, "NetworkID": STRING, "EndpointID": STRING, "Gateway": STRING,
    "IPAddress": STRING, "IPPrefixLen": INT, "IPv6Gateway": STRING, "GlobalIPv6Address": STRING,
    "GlobalIPv6PrefixLen": INT, "DNSNames": STRINGS,
})

CREATE_REQUEST = Struct("runconfig.ContainerConfigWrapper", {
    **CONFIG_FIELDS,
    "HostConfig": Ptr(HOST_CONFIG),
    "NetworkingConfig": Ptr(Struct("network.NetworkingConfig", {
        "EndpointsConfig": Map(Ptr(ENDPOINT_SETTINGS), "map[string]*network.EndpointSettings"),
    })),
})

EXEC_REQUEST = Struct("types.ExecConfig", {
    "User": STRING, "Privileged": BOOL, "Tty": BOOL,
    "ConsoleSize": Ptr(Array(Scalar("uint", "uint"), 2, "[2]uint")),
    "AttachStdin": BOOL, "AttachStderr": BOOL, "AttachStdout": BOOL, "Detach": BOOL,
    "DetachKeys": STRING, "Env": STRINGS, "WorkingDir": STRING, "Cmd": STRINGS,
})

EXEC_START_REQUEST = Struct("types.ExecStartCheck", {
    "Detach": BOOL, "Tty": BOOL, "ConsoleSize": EXEC_REQUEST.fields["ConsoleSize"],
})

UPDATE_REQUEST = Struct("container.UpdateConfig", {
    **RESOURCES_FIELDS,
    "RestartPolicy": HOST_CONFIG.fields["RestartPolicy"],
})


# -- the check ---------------------------------------------------------------------------------

def parse_create_body(body: Mapping) -> dict:
    """A create request's body as dockerd decodes it; InvalidArgument with Go's message for a
    value of the wrong type."""
    return parse_body(body, CREATE_REQUEST)


def parse_exec_body(body: Mapping) -> dict:
    """An exec create request's body (ExecConfig) as dockerd decodes it."""
    return parse_body(body, EXEC_REQUEST)


def parse_exec_start_body(body: Mapping) -> dict:
    """An exec start request's body (ExecStartCheck)."""
    return parse_body(body, EXEC_START_REQUEST)


def parse_update_body(body: Mapping) -> dict:
    """A container update's body (UpdateConfig: the resources and the restart policy)."""
    return parse_body(body, UPDATE_REQUEST)


def parse_body(body: Mapping, typ: Struct) -> dict:
    decoder = _Decoder()
    try:
        out = decoder.struct(body, typ, (typ.short, ()))
    except _Fatal as exc:
        raise InvalidArgument(str(exc)) from None
    if decoder.error is not None:
        raise InvalidArgument(decoder.error)
    return out


class _Fatal(Exception):
    """An UnmarshalJSON error: Go's decode stops there."""


_Context = tuple[str, tuple[str, ...]]  # innermost struct's name, field names from the root


def _json_kind(value: object) -> str:
    match value:
        case bool():
            return "bool"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list() | tuple():
            return "array"
        case _:
            return "object"


def _message(what: str, typ_name: str, ctx: _Context) -> str:
    return (f"json: cannot unmarshal {what} into Go struct field "
            f"{ctx[0]}.{'.'.join(ctx[1])} of type {typ_name}")


def _type_name(typ: object) -> str:
    return _type_name(typ.elem) if isinstance(typ, Ptr) else typ.name


def _zero(typ: object) -> object:
    """Go's zero value of ``typ`` for a null list or map element."""
    match typ:
        case Scalar(kind="bool"):
            return False
        case Scalar(kind="string"):
            return ""
        case Scalar():
            return 0
        case Struct():
            return {}
        case Array(elem=elem, size=size):
            return [_zero(elem)] * size
        case _:
            return None


def _number_literal(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


class _Decoder:
    def __init__(self) -> None:
        self.error: str | None = None  # the first type error, as Go's saveError keeps it

    def fail(self, what: str, typ: object, ctx: _Context) -> None:
        if self.error is None:
            self.error = _message(what, _type_name(typ), ctx)

    def value(self, value: object, typ: object, ctx: _Context) -> object:
        if value is None:
            return None
        match typ:
            case Ptr(elem=elem):
                return self.value(value, elem, ctx)
            case Scalar():
                return self.scalar(value, typ, ctx)
            case StrSlice():
                return _strslice(value, ctx)
            case Struct():
                if isinstance(value, Mapping):
                    return self.struct(value, typ, ctx)
            case Slice(elem=elem) | Array(elem=elem):
                if isinstance(value, list):
                    items = [self.element(v, elem, ctx) for v in value]
                    if isinstance(typ, Array):
                        items = (items + [_zero(elem)] * typ.size)[:typ.size]
                    return items
            case Map(elem=elem):
                if isinstance(value, Mapping):
                    return {k: self.element(v, elem, ctx) for k, v in value.items()}
        self.fail(_json_kind(value), typ, ctx)
        return value

    def element(self, value: object, typ: object, ctx: _Context) -> object:
        """A slice or map element: null is the element type's zero value."""
        return _zero(typ) if value is None else self.value(value, typ, ctx)

    def scalar(self, value: object, typ: Scalar, ctx: _Context) -> object:
        kind = _json_kind(value)
        if typ.kind == "bool":
            ok = kind == "bool"
        elif typ.kind == "string":
            ok = kind == "string"
        elif kind != "number":
            ok = False
        else:
            lo, hi = ((-(1 << typ.bits - 1), (1 << typ.bits - 1) - 1) if typ.kind == "int"
                      else (0, (1 << typ.bits) - 1))
            ok = isinstance(value, int) and lo <= value <= hi
            kind = f"number {_number_literal(value)}"
        if not ok:
            self.fail(kind, typ, ctx)
        return value

    def struct(self, value: Mapping, typ: Struct, ctx: _Context) -> dict:
        out: dict = {}
        for key, item in value.items():
            name = key if key in typ.fields else typ.folded.get(key.lower())
            if name is None:  # unknown to Go: ignored there, kept here
                out[key] = item
                continue
            if item is None and name in out and isinstance(typ.fields[name], Scalar | Struct | Array):
                continue  # null leaves a value type as an earlier key of the same name set it
            out[name] = self.value(item, typ.fields[name], (typ.short, (*ctx[1], name)))
        return out


def _strslice(value: object, ctx: _Context) -> list[str]:
    """StrSlice.UnmarshalJSON: an array of strings, else a string; its error (from the
    attempt as a string) ends the decode."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(v is None or isinstance(v, str) for v in value):
        return ["" if v is None else v for v in value]
    raise _Fatal(_message(_json_kind(value), "string", ctx))
