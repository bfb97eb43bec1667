"""Capabilities, security options and seccomp of a Docker container, as dockerd sets them.

Owns oci/caps (the default set, CapAdd/CapDrop with ``ALL``, ``--privileged``), the parsing of
HostConfig.SecurityOpt, and the filtering of a Docker seccomp profile (moby/profiles
seccomp_linux.go) for one container's capabilities, the native architecture and the kernel. The
default profile is data: seccomp_default.json, moby/profiles' default.json. AppArmor and SELinux
options are accepted and ignored (dockyard loads no LSM profile).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.engine.etcfiles import go_quote
from dockyard.engine.hostinfo import DaemonOptions, HostInfo
from dockyard.errdefs import InvalidArgument
from dockyard.linux.capabilities import CAPABILITIES

log = logging.getLogger(__name__)

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)


_SECCOMP_ARCH = {  # libseccomp's native arch name -> SCMP_ARCH_*
    "x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64", "mips64": "SCMP_ARCH_MIPS64", "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64", "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL", "ppc": "SCMP_ARCH_PPC", "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE", "riscv64": "SCMP_ARCH_RISCV64", "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}


def normalize_capabilities(caps: Sequence[str], host: HostInfo | None = None) -> list[str]:
    """CapAdd/CapDrop entries upper-cased with a CAP_ prefix; ``ALL`` kept; unknown ones refused."""
    available = (host or HostInfo.probe()).capabilities
    out = []
    for cap in caps:
        cap = cap.upper()
        if cap != "ALL":
            cap = cap if cap.startswith("CAP_") else "CAP_" + cap
            if cap not in CAPABILITIES:
                raise InvalidArgument(f"unknown capability: {go_quote(cap)}")
            if cap not in available:
                raise InvalidArgument("capability not supported by your kernel or not available "
                                      f"in the current environment: {go_quote(cap)}")
        out.append(cap)
    return out


def tweak_capabilities(cap_add: Sequence[str], cap_drop: Sequence[str], privileged: bool,
                       host: HostInfo) -> list[str]:
    """The capability list of a container (oci/caps TweakCapabilities)."""
    if privileged:
        return list(host.capabilities)
    if not cap_add and not cap_drop:
        return list(DEFAULT_CAPABILITIES)
    drop, add = normalize_capabilities(cap_drop, host), normalize_capabilities(cap_add, host)
    if "ALL" in add:
        return [c for c in host.capabilities if c not in drop]
    if "ALL" in drop:
        return add
    return [c for c in DEFAULT_CAPABILITIES if c not in drop] + add


@dataclass
class SecurityOptions:
    no_new_privileges: bool = False
    seccomp: str | None = None          # None: the daemon's; "unconfined", "builtin", or JSON
    writable_cgroups: bool | None = None
    ignored: list[str] = field(default_factory=list)  # apparmor= and label= (no LSM here)


def parse_security_opts(opts: Sequence[str], daemon: DaemonOptions | None = None) -> SecurityOptions:
    """HostConfig.SecurityOpt as dockerd parses it (daemon_unix.go parseSecurityOpt)."""
    sec = SecurityOptions(no_new_privileges=(daemon or DaemonOptions()).no_new_privileges)
    for opt in opts:
        if opt == "no-new-privileges":
            sec.no_new_privileges = True
            continue
        if opt == "disable":
            sec.ignored.append(opt)
            continue
        sep = "=" if "=" in opt else ":" if ":" in opt else ""
        if not sep:
            raise InvalidArgument(f"invalid --security-opt 1: {go_quote(opt)}")
        key, _, value = opt.partition(sep)
        if key in ("label", "apparmor"):
            sec.ignored.append(opt)
        elif key == "seccomp":
            sec.seccomp = value
        elif key in ("no-new-privileges", "writable-cgroups"):
            flag = _parse_bool(value)
            if flag is None:
                raise InvalidArgument(f"invalid --security-opt 2: {go_quote(opt)}")
            if key == "no-new-privileges":
                sec.no_new_privileges = flag
            else:
                sec.writable_cgroups = flag
        else:
            raise InvalidArgument(f"invalid --security-opt 2: {go_quote(opt)}")
    if sec.ignored:
        log.info("security options without effect in dockyard (no LSM): %s", sec.ignored)
    return sec


def _parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


# -- seccomp -----------------------------------------------------------------------------------

@functools.cache
def _default_profile_text() -> str:
    return Path(__file__).with_name("seccomp_default.json").read_text()


def default_seccomp_profile() -> dict:
    """Docker's default seccomp profile (moby/profiles seccomp/default.json), as data."""
    return json.loads(_default_profile_text())


def _kernel_version(value: object) -> tuple[int, int]:
    """A rule's ``minKernel``: "<kernel>.<major>", each below 256, not 0.0."""
    bad = InvalidArgument(
        f'invalid kernel version: {json.dumps(value)}, expected "<kernel>.<major>"')
    parts = value.split(".", 2) if isinstance(value, str) else []
    if len(parts) != 2 or not all(re.fullmatch("[0-9]{1,3}", p) and int(p) < 256 for p in parts):
        raise bad
    version = (int(parts[0]), int(parts[1]))
    if version == (0, 0):
        raise bad
    return version


def _rule_applies(rule: Mapping, bounding: Sequence[str], host: HostInfo) -> bool:
    excludes, includes = rule.get("excludes") or {}, rule.get("includes") or {}
    if host.arch in (excludes.get("arches") or ()):
        return False
    if any(c in bounding for c in excludes.get("caps") or ()):
        return False
    if excludes.get("minKernel") and host.kernel >= _kernel_version(excludes["minKernel"]):
        return False
    if includes.get("arches") and host.arch not in includes["arches"]:
        return False
    if not all(c in bounding for c in includes.get("caps") or ()):
        return False
    if includes.get("minKernel") and host.kernel < _kernel_version(includes["minKernel"]):
        return False
    return True


def seccomp_config(profile: Mapping, bounding: Sequence[str], host: HostInfo) -> dict | None:
    """A Docker seccomp profile filtered for this container (moby/profiles setupSeccomp).

    Rules are kept or dropped by their ``includes``/``excludes`` (native architecture, the
    container's bounding capabilities, the host kernel); ``archMap`` becomes the architectures of
    the native one; the rest of the profile's LinuxSeccomp fields pass through.
    """
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument("both 'architectures' and 'archMap' are specified in the seccomp "
                              "profile, use either 'architectures' or 'archMap'")
    out = {k: profile[k] for k in ("defaultAction", "defaultErrnoRet", "architectures", "flags",
                                   "listenerPath", "listenerMetadata")
           if profile.get(k) is not None and profile[k] not in ("", [])}
    native = _SECCOMP_ARCH.get(host.arch)
    for entry in profile.get("archMap") or ():
        if native and entry.get("architecture") == native:
            out["architectures"] = [native, *(entry.get("subArchitectures") or ())]
            break
    syscalls = []
    for rule in profile.get("syscalls") or ():
        names = list(rule.get("names") or ())
        if rule.get("name"):
            if names:
                raise InvalidArgument("both 'name' and 'names' are specified in the seccomp "
                                      "profile, use either 'name' or 'names'")
            names = [rule["name"]]
        if not _rule_applies(rule, bounding, host):
            continue
        call: dict = {"names": names, "action": rule.get("action", "")}
        if rule.get("errnoRet") is not None:
            call["errnoRet"] = rule["errnoRet"]
        args = [{"index": a.get("index", 0), "value": a.get("value", 0), "op": a.get("op", "")}
                | ({"valueTwo": a["valueTwo"]} if a.get("valueTwo") else {})
                for a in rule.get("args") or ()]
        if args:
            call["args"] = args
        syscalls.append(call)
    if syscalls:
        out["syscalls"] = syscalls
    return out


def load_seccomp_profile(text: str) -> dict:
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"Decoding seccomp profile failed: {exc}") from None
    if not isinstance(profile, dict):
        raise InvalidArgument("Decoding seccomp profile failed: expected a JSON object")
    return profile


def container_seccomp(sec: SecurityOptions, privileged: bool, bounding: Sequence[str],
                      host: HostInfo, daemon: DaemonOptions) -> dict | None:
    """linux.seccomp (WithSeccomp): none when privileged or unconfined, else the container's
    profile, the daemon's, or the default, filtered for the container's bounding set."""
    choice = sec.seccomp
    if choice == "unconfined" or privileged:
        return None
    if not host.seccomp:
        if choice not in (None, "", "builtin"):
            raise InvalidArgument(
                "seccomp is not enabled in your kernel, cannot run a custom seccomp profile")
        return None
    if not choice and daemon.seccomp_profile not in (None, "", "builtin"):
        if daemon.seccomp_profile == "unconfined":
            return None
        choice = daemon.seccomp_profile
    if choice and choice != "builtin":
        return seccomp_config(load_seccomp_profile(choice), bounding, host)
    return seccomp_config(default_seccomp_profile(), bounding, host)
