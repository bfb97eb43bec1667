"""Image archive throughput: `docker save` / `docker load` of dockerd 20.10 against dockyard's
`save_archive` / `load_archive`, on the same archive in the same run.

Builds one image of ``--layers`` uncompressed layers totalling ``--size-mb`` MiB (each layer:
big files of random data, which no compressor shrinks, some compressible text, and a few
hundred small files), registers it in a dockyard store, and writes it once with dockyard's save:
that archive is what both sides load. Then, per run, interleaved (dockerd, dockyard, ...):

- load: dockerd: ``docker load -i archive.tar`` (the CLI streams it to the daemon, which untars
  it to a temp dir, then applies every layer into overlay2 and registers the image); the image
  is removed (untimed) before the next run. dockyard: ``load_archive`` from the file into a
  fresh store (each blob hashed, verified and fsynced into the content store; layers are not
  unpacked, which a container's first start does). ``--unpack`` adds dockyard's unpack of
  every layer into snapshots, the part of dockerd's load that dockyard defers.
- save: dockerd: ``docker save -o out.tar`` (graphdriver diff -> tar per layer into a temp
  dir, then that dir as a tar). dockyard: ``save_archive`` to a file (blobs copied with
  sendfile(2)).

Each timed operation starts after ``sync`` with the archive in the page cache. Prints median,
runs, MiB/s, and dockyard's time over dockerd's (below 1: dockyard is faster).

    .venv/bin/python bench/image.py [--size-mb 300] [--layers 5] [--runs 3] [--unpack] [--json]

Needs root, Debian's docker.io (dockerd and the docker CLI) and a few GiB free in $TMPDIR.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from dockyard.image.archive import load_archive, save_archive
from dockyard.image.service import ImageService
from dockyard.spec import mediatypes as mt
from dockyard.spec.image import Descriptor, canonical_json
from dockyard.testing.refdockerd import RefDockerd

MIB = 1 << 20
TAG = "bench/image:latest"


class _Pattern(io.RawIOBase):
    """``size`` bytes cut from a random block at a random offset (cheap, not compressible)."""

    def __init__(self, block: bytes, size: int, offset: int) -> None:
        self._block, self._left, self._pos = block, size, offset % len(block)

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        want = min(len(buf), self._left)  # always a full read: tarfile insists on one
        done = 0
        while done < want:
            n = min(want - done, len(self._block) - self._pos)
            buf[done:done + n] = self._block[self._pos:self._pos + n]
            self._pos = (self._pos + n) % len(self._block)
            done += n
        self._left -= want
        return want


def build_layer(path: Path, size: int, seed: int) -> None:
    """A layer tar of about ``size`` bytes: 70% random, 20% text, 10% in small files."""
    rng = random.Random(seed)
    block = rng.randbytes(8 * MIB)
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(500)]
    text = " ".join(rng.choice(words) for _ in range(200_000)).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data_size: int = 0, source=None, directory: bool = False) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid = 1_700_000_000, 0, 0
            info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
            info.mode = 0o755 if directory else 0o644
            info.size = data_size
            tar.addfile(info, source)

        base = f"layer{seed}"
        add(base, directory=True)
        for i in range(2):
            n = int(size * 0.35)
            add(f"{base}/random{i}.bin", n, _Pattern(block, n, rng.randrange(len(block))))
        n = int(size * 0.2)
        add(f"{base}/text.txt", n, io.BytesIO((text * (n // len(text) + 1))[:n]))
        add(f"{base}/small", directory=True)
        left = int(size * 0.1)
        j = 0
        while left > 0:
            n = min(left, rng.randint(1024, 64 * 1024))
            add(f"{base}/small/f{j:05d}", n, _Pattern(block, n, rng.randrange(len(block))))
            left -= n
            j += 1


def build_image(svc: ImageService, layers: list[Path]) -> None:
    """Register the image with its layers stored uncompressed, as dockerd's save writes them."""
    with svc.content.lease():
        descs = []
        for path in layers:
            with open(path, "rb") as f:
                digest = svc.content.ingest_file(f)
            descs.append(Descriptor(media_type=mt.OCI_LAYER, digest=digest, size=path.stat().st_size))
        config = canonical_json({
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [d.digest for d in descs]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                        for i in range(len(descs))],
        })
        svc.content.ingest_bytes(config)
        manifest = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                                   "config": Descriptor.of(mt.OCI_CONFIG, config), "layers": descs})
        svc.content.ingest_bytes(manifest)
        svc.register(Descriptor.of(mt.OCI_MANIFEST, manifest), [TAG])


def _sync() -> None:
    subprocess.run(["sync"], check=True)


def _warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(8 * MIB):
            pass


def _timed(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def dockerd_load(d: RefDockerd, archive: Path) -> float:
    d.docker("rmi", "-f", TAG, check=False)
    d.docker("image", "prune", "-f", check=False)
    return _timed(lambda: d.docker("load", "-i", str(archive), timeout=600))


def dockerd_save(d: RefDockerd, out: Path) -> float:
    out.unlink(missing_ok=True)
    return _timed(lambda: d.docker("save", "-o", str(out), TAG, timeout=600))


def dockyard_load(work: Path, archive: Path, unpack: bool) -> float:
    root = work / "dockyard-load"
    shutil.rmtree(root, ignore_errors=True)
    with ImageService(root) as svc:
        def load() -> None:
            with open(archive, "rb") as f:
                load_archive(f, svc)
            if unpack:
                svc.unpack(TAG)
        took = _timed(load)
    shutil.rmtree(root, ignore_errors=True)
    return took


def dockyard_save(svc: ImageService, out: Path) -> float:
    out.unlink(missing_ok=True)

    def save() -> None:
        with open(out, "wb") as f:
            save_archive([TAG], svc, f)
    return _timed(save)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=300, help="total uncompressed size (MiB)")
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per contender")
    ap.add_argument("--unpack", action="store_true", help="dockyard's load also unpacks layers")
    ap.add_argument("--dir", default=None, help="where to make the temp dir (default: $TMPDIR)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/image.py needs root (it starts a reference dockerd)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="dy-image-bench-", dir=args.dir))
    try:
        return _bench(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(work: Path, args) -> int:
    t0 = time.perf_counter()
    layers = []
    for i in range(args.layers):
        path = work / f"layer{i}.tar"
        build_layer(path, args.size_mb * MIB // args.layers, seed=i + 1)
        layers.append(path)
    archive = work / "archive.tar"
    with ImageService(work / "dockyard-src") as src:
        build_image(src, layers)
        for path in layers:
            path.unlink()
        with open(archive, "wb") as f:
            save_archive([TAG], src, f)
        info = {"layers": args.layers, "archive_mb": round(archive.stat().st_size / MIB, 1),
                "build_s": round(time.perf_counter() - t0, 1)}
        _warm(archive)
        samples: dict[str, list[float]] = {k: [] for k in
                                           ("load dockerd", "load dockyard", "save dockerd", "save dockyard")}
        with RefDockerd(dockyard_runtime=None, base_dir=work) as d:
            info["storage_driver"] = d.storage_driver
            dockerd_load(d, archive)  # warm-up: fresh memory is slow to touch on a VM
            dockyard_load(work, archive, args.unpack)
            for _ in range(args.runs):
                samples["load dockerd"].append(dockerd_load(d, archive))
                samples["load dockyard"].append(dockyard_load(work, archive, args.unpack))
                samples["save dockerd"].append(dockerd_save(d, work / "out-dockerd.tar"))
                samples["save dockyard"].append(dockyard_save(src, work / "out-dockyard.tar"))
    _report(info, samples, args)
    return 0


def _report(info: dict, samples: dict[str, list[float]], args) -> None:
    medians = {k: statistics.median(v) for k, v in samples.items()}
    ratios = {op: medians[f"{op} dockyard"] / medians[f"{op} dockerd"] for op in ("load", "save")}
    if args.json:
        print(json.dumps({"image": info, "unpack": args.unpack, "samples_s": samples,
                          "median_s": medians, "dockyard_over_dockerd": ratios}, indent=2))
        return
    print(f"image: {info}; dockyard load unpacks: {args.unpack}")
    for name, values in samples.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:>14}: median {medians[name]:6.2f} s  ({runs})  "
              f"{info['archive_mb'] / medians[name]:5.0f} MiB/s")
    for op, ratio in ratios.items():
        print(f"{op}: dockyard / dockerd = {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
