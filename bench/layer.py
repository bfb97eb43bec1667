"""Layer apply throughput: dockyard's `apply_layer` against GNU `tar -x` on the same layer tar.

Builds one uncompressed layer tar (default ~1 GiB: a few big files plus many small files in
many directories, PAX headers as Docker writes them) in a private temp dir, then extracts it
into a fresh directory with each contender, interleaved (tar, dockyard, tar, dockyard, ...) so
that drift on the machine falls on both alike. After one untimed warm-up run each (on a VM, the first touch of fresh
memory is several times slower than later ones), each run starts with the tar in the page cache,
an empty target and `sync` done (untimed); the timed part is the extraction only (no fsync):
`tar -xf layer.tar -C target` as a child process, `apply_layer(f, target)` in this process
(form="overlay", which for a layer without whiteouts is plain extraction). dockyard also
computes the DiffID (sha256 of every byte) while extracting; tar does not. Reported: wall time
(median, every run, throughput) and CPU time (user+sys; for dockyard all its threads, as it reads
and hashes in a second thread), which is the steadier number on a shared machine.

    .venv/bin/python bench/layer.py [--size-mb 1024] [--runs 3] [--warmup 1] [--small-share 0.25] [--json]

Needs root for a like-for-like comparison (tar then restores owners, as apply does). With the
default temp dir on a disk, both contenders may be bound by write-back (on the dev VM both ran at
~40 MiB/s); `--dir /dev/shm` takes the disk out and compares the CPU cost of extracting.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from dockyard.image.layer import apply_layer

MIB = 1 << 20


class _Pattern(io.RawIOBase):
    """``size`` bytes cut from a repeated random block (cheap to make, not compressible)."""

    def __init__(self, block: bytes, size: int) -> None:
        self._block, self._left, self._pos = block, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self._left, len(self._block) - self._pos)
        buf[:n] = self._block[self._pos:self._pos + n]
        self._pos = (self._pos + n) % len(self._block)
        self._left -= n
        return n


def build_layer(path: Path, size_mb: int, small_share: float, seed: int = 1) -> dict:
    """Write the layer tar; return what is in it."""
    rng = random.Random(seed)
    block = rng.randbytes(4 * MIB)
    total = size_mb * MIB
    small_budget = int(total * small_share)
    big_count = 4
    big_size = (total - small_budget) // big_count
    stats = {"big_files": big_count, "big_file_mb": big_size // MIB, "small_files": 0, "dirs": 0}
    mtime = 1_700_000_000
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes, size: int = 0, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mode, info.mtime = kind, size, mode, mtime
            info.uid = info.gid = 0
            tar.addfile(info, _Pattern(block, size) if size else None)

        add("opt", tarfile.DIRTYPE, mode=0o755)
        for i in range(big_count):
            add(f"opt/big{i}.bin", tarfile.REGTYPE, big_size)
        add("usr", tarfile.DIRTYPE, mode=0o755)
        used, d = 0, 0
        while used < small_budget:
            dirname = f"usr/share/pkg{d:04d}"
            if d == 0:
                add("usr/share", tarfile.DIRTYPE, mode=0o755)
            add(dirname, tarfile.DIRTYPE, mode=0o755)
            stats["dirs"] += 1
            for j in range(64):
                size = min(int(rng.expovariate(1 / 8192)), 256 * 1024)
                add(f"{dirname}/file{j:03d}.txt", tarfile.REGTYPE, size)
                used += size
                stats["small_files"] += 1
            d += 1
    stats["tar_mb"] = round(path.stat().st_size / MIB, 1)
    return stats


def _fresh(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    subprocess.run(["sync"], check=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tar(layer: Path, target: Path) -> tuple[float, float]:
    """(wall, CPU) seconds."""
    _fresh(target)
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(["tar", "-xf", str(layer), "-C", str(target)], check=True)
    return time.perf_counter() - start, _children_cpu() - cpu


def run_dockyard(layer: Path, target: Path) -> tuple[float, float]:
    """(wall, CPU of all this process's threads) seconds."""
    _fresh(target)
    cpu, start = time.process_time(), time.perf_counter()
    with open(layer, "rb") as f:
        apply_layer(f, str(target), compression="none")
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="uncompressed layer size (MiB)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per contender")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per contender first")
    ap.add_argument("--small-share", type=float, default=0.25, help="share of bytes in small files")
    ap.add_argument("--dir", default=None, help="where to make the temp dir (default: $TMPDIR)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("warning: not root; tar will not restore owners", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="dy-layer-bench-", dir=args.dir))
    try:
        layer = work / "layer.tar"
        t0 = time.perf_counter()
        info = build_layer(layer, args.size_mb, args.small_share)
        info["build_s"] = round(time.perf_counter() - t0, 1)
        with open(layer, "rb") as f:  # warm the page cache
            while f.read(8 * MIB):
                pass
        runners = {"tar -x": run_tar, "dockyard": run_dockyard}
        samples: dict[str, list[float]] = {name: [] for name in runners}
        cpu: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.warmup):  # the VM's first touch of fresh memory is slow
            for run in runners.values():
                run(layer, work / "target")
        for _ in range(args.runs):
            for name, run in runners.items():
                wall, used = run(layer, work / "target")
                samples[name].append(wall)
                cpu[name].append(used)
        medians = {name: statistics.median(v) for name, v in samples.items()}
        cpu_medians = {name: statistics.median(v) for name, v in cpu.items()}
        ratio = medians["dockyard"] / medians["tar -x"]
        if args.json:
            print(json.dumps({"layer": info, "samples_s": samples, "median_s": medians, "ratio": ratio,
                              "cpu_s": cpu, "cpu_median_s": cpu_medians}, indent=2))
        else:
            print(f"layer: {info}")
            for name, values in samples.items():
                runs = ", ".join(f"{v:.2f}" for v in values)
                print(f"{name:>9}: median {medians[name]:.2f} s  ({runs})  "
                      f"{info['tar_mb'] / medians[name]:.0f} MiB/s  CPU {cpu_medians[name]:.2f} s")
            print(f"dockyard / tar -x: {ratio:.2f}x wall, {cpu_medians['dockyard'] / cpu_medians['tar -x']:.2f}x CPU")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
