"""Device rules for cgroup v2: OCI ``linux.resources.devices`` compiled to an eBPF program.

cgroup v2 has no devices.allow/deny files; access is decided by a BPF_PROG_TYPE_CGROUP_DEVICE
program attached to the cgroup (Documentation/admin-guide/cgroup-v2.rst, "Device controller").
This module owns the pure part: applying the rules in order exactly as the v1 devices controller
does (Documentation/admin-guide/cgroup-v1/devices.rst), then emitting the program as raw eBPF
instructions (the layout of runc's libcontainer/cgroups/ebpf/devicefilter). No I/O and no ctypes
here; `bpf.py` loads and attaches the program.

Semantics kept from v1: rules start from "deny everything"; an ``a`` rule resets to allow-all
or deny-all and drops every exception; other rules add or remove access bits of the exception
with exactly the same type/major/minor. A request passes an allow-exception when its access is
a subset of the exception's; it is caught by a deny-exception when the accesses overlap.
"""

from __future__ import annotations

from dockyard.errdefs import InvalidArgument

# struct bpf_cgroup_dev_ctx { u32 access_type /* type | access << 16 */; u32 major; u32 minor; }
DEV_BLOCK, DEV_CHAR = 1, 2                  # BPF_DEVCG_DEV_*
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4    # BPF_DEVCG_ACC_*
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# eBPF opcodes used (include/uapi/linux/bpf_common.h, bpf.h)
_LDX_W = 0x61        # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54      # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74      # BPF_ALU | BPF_RSH | BPF_K
_MOV32_K = 0xB4      # BPF_ALU | BPF_MOV | BPF_K
_MOV32_X = 0xBC      # BPF_ALU | BPF_MOV | BPF_X
_JEQ_K = 0x15        # BPF_JMP | BPF_JEQ | BPF_K
_JNE_K = 0x55        # BPF_JMP | BPF_JNE | BPF_K
_JNE_X = 0x5D        # BPF_JMP | BPF_JNE | BPF_X
_EXIT = 0x95         # BPF_JMP | BPF_EXIT
R0, R1, R2, R3, R4, R5 = range(6)


def access_bits(access: str | None) -> int:
    bits = 0
    for ch in access or "rwm":
        try:
            bits |= _ACCESS[ch]
        except KeyError:
            raise InvalidArgument(f"linux.resources.devices: unknown access {ch!r}") from None
    return bits


def effective_rules(rules) -> tuple[bool, list[tuple[int, int, int, int]]]:
    """``(default_allow, exceptions)`` after applying ``rules`` in order as v1 does.

    Each exception is ``(bpf type, major, minor, access bits)`` with -1 for a wildcard; its
    verdict is the opposite of the default.
    """
    default_allow = False
    exceptions: dict[tuple[int, int, int], int] = {}
    for rule in rules:
        kind = rule.type or "a"
        bits = access_bits(rule.access)
        if kind == "a":
            default_allow, exceptions = rule.allow, {}
            continue
        if kind not in _TYPES:
            raise InvalidArgument(f"linux.resources.devices: unknown device type {kind!r}")
        key = (_TYPES[kind], _number(rule.major), _number(rule.minor))
        if rule.allow != default_allow:
            exceptions[key] = exceptions.get(key, 0) | bits
        elif key in exceptions:
            left = exceptions[key] & ~bits
            if left:
                exceptions[key] = left
            else:
                del exceptions[key]
    return default_allow, [(*key, bits) for key, bits in exceptions.items()]


def _number(value: int | None) -> int:
    if value is None or value < 0:
        return -1
    if value > 0x7FFFFFFF:  # compared as a sign-extended 32-bit immediate
        raise InvalidArgument(f"linux.resources.devices: device number {value} is too large")
    return value


def device_program(rules) -> bytes:
    """The eBPF program (8 bytes per instruction) that returns 1 to allow, 0 to deny."""
    default_allow, exceptions = effective_rules(rules)
    code = [
        _insn(_LDX_W, R2, R1, 0), _insn(_AND32_K, R2, imm=0xFFFF),   # R2 = type
        _insn(_LDX_W, R3, R1, 0), _insn(_RSH32_K, R3, imm=16),       # R3 = access
        _insn(_LDX_W, R4, R1, 4),                                    # R4 = major
        _insn(_LDX_W, R5, R1, 8),                                    # R5 = minor
    ]
    verdict = 0 if default_allow else 1
    for kind, major, minor, bits in exceptions:
        block = _block(kind, major, minor, bits, deny=default_allow, verdict=verdict)
        code.extend(block)
    code += [_insn(_MOV32_K, R0, imm=1 if default_allow else 0), _insn(_EXIT)]
    return b"".join(code)


def _block(kind: int, major: int, minor: int, bits: int, deny: bool, verdict: int) -> list[bytes]:
    """One exception: a run of "if no match goto next block" tests, then return ``verdict``.

    Jump offsets count instructions after the jump; the block's length is known up front.
    """
    tests: list[tuple[int, int, int, int]] = [(_JNE_K, R2, 0, kind)]  # (op, dst, src, imm)
    if bits != ACC_ALL:
        tests.append((_MOV32_X, R1, R3, 0))
        tests.append((_AND32_K, R1, 0, bits))
        # an allow needs access within bits; a deny catches any overlap with them
        tests.append((_JEQ_K, R1, 0, 0) if deny else (_JNE_X, R1, R3, 0))
    if major >= 0:
        tests.append((_JNE_K, R4, 0, major))
    if minor >= 0:
        tests.append((_JNE_K, R5, 0, minor))
    length = len(tests) + 2
    out = []
    for i, (op, dst, src, imm) in enumerate(tests):
        off = length - i - 1 if op in (_JNE_K, _JEQ_K, _JNE_X) else 0
        out.append(_insn(op, dst, src, off, imm))
    out += [_insn(_MOV32_K, R0, imm=verdict), _insn(_EXIT)]
    return out


def _insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; } (little endian)."""
    return (bytes((op, dst | src << 4)) + off.to_bytes(2, "little", signed=True)
            + imm.to_bytes(4, "little", signed=True))
