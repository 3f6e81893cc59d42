"""Fetch a Go toolchain from the Go module proxy and unpack it as a GOROOT (stdlib only).

Usage: python3 hack/lib/go_toolchain.py VERSION H1 TARGET_DIR
  VERSION     e.g. 1.26.8; the module is golang.org/toolchain@v0.0.1-goVERSION.linux-ARCH
  H1          the module's go.sum hash ("h1:..."), pinned by hack/install-deps
  TARGET_DIR  created; becomes the GOROOT (TARGET_DIR/bin/go)

Go publishes its releases as modules of golang.org/toolchain (this is what GOTOOLCHAIN
downloads), so a machine that reaches the module proxy needs no other download host. The zip is
checked against H1 (the go.sum "dirhash" of the zip's files) before anything is unpacked.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def module_version(version: str) -> str:
    arch = ARCHES.get(platform.machine().lower())
    if arch is None:
        sys.exit(f"go_toolchain: no Go toolchain module for machine {platform.machine()!r}")
    return f"v0.0.1-go{version}.linux-{arch}"


def proxy() -> str:
    # The first proxy of GOPROXY (comma or pipe separated), as the go command would try it.
    first = os.environ.get("GOPROXY", "https://proxy.golang.org").replace("|", ",").split(",")[0]
    if first in ("", "direct", "off"):
        first = "https://proxy.golang.org"
    return first.rstrip("/")


def dirhash(archive: zipfile.ZipFile) -> str:
    """golang.org/x/mod/sumdb/dirhash.HashZip: sha256 over "sha256hex  name\\n" lines, sorted."""
    lines = []
    for name in sorted(info.filename for info in archive.infolist() if not info.is_dir()):
        lines.append(f"{hashlib.sha256(archive.read(name)).hexdigest()}  {name}\n")
    summary = hashlib.sha256("".join(lines).encode()).digest()
    return "h1:" + base64.b64encode(summary).decode()


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    version, expected, target = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    mod = module_version(version)
    url = f"{proxy()}/golang.org/toolchain/@v/{mod}.zip"
    print(f"go_toolchain: downloading {url}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "toolchain.zip"
        with urllib.request.urlopen(url, timeout=120) as response, zip_path.open("wb") as out:  # noqa: S310 (https proxy)
            shutil.copyfileobj(response, out)
        with zipfile.ZipFile(zip_path) as archive:
            got = dirhash(archive)
            if got != expected:
                sys.exit(f"go_toolchain: {mod} hashes to {got}, expected {expected}: not unpacked")
            prefix = f"golang.org/toolchain@{mod}/"
            staging = Path(tmp) / "goroot"
            for info in archive.infolist():
                if info.is_dir() or not info.filename.startswith(prefix):
                    continue
                relative = info.filename[len(prefix) :]
                if relative.startswith("/") or ".." in Path(relative).parts:
                    sys.exit(f"go_toolchain: unsafe path in the zip: {info.filename}")
                dest = staging / relative
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(archive.read(info))
        # Module zips carry no file modes: the go command marks bin/ and pkg/tool/ executable when
        # it unpacks a toolchain, and so do we.
        for folder in (staging / "bin", *sorted((staging / "pkg" / "tool").glob("*"))):
            for path in folder.iterdir():
                if path.is_file():
                    path.chmod(0o755)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(target))
    print(f"go_toolchain: Go {version} unpacked at {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
