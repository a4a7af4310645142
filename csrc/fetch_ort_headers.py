"""Fetch the ONNX Runtime C/C++ headers that the custom-op library compiles against.

    python csrc/fetch_ort_headers.py            # prints the include directory (downloads once)

No PyPI wheel ships these headers (onnxruntime, onnxruntime-gpu, -extensions, -genai all lack them), and the
project must not vendor them, so they come from Debian's ``libonnxruntime-dev`` (trixie, 1.21.0, C API 21),
downloaded by its pinned pool file name and sha256, and unpacked into a per-user cache. API 21 headers work
with any newer runtime (ORT serves every older API version); RegisterCustomOps checks for the opposite case.
Standard library only: CMake runs this before anything else is installed.

Environment:
    EMBEDRT_ORT_INCLUDE_DIR  use this directory (must hold onnxruntime_cxx_api.h) and download nothing
    EMBEDRT_ORT_DEB_URL      another URL for the same .deb (a mirror); the sha256 is still checked
    EMBEDRT_CACHE_DIR        cache root (default: ~/.cache/embedrt)
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

DEB_NAME = "libonnxruntime-dev_1.21.0+dfsg-1_amd64.deb"
DEB_URL = f"http://deb.debian.org/debian/pool/main/o/onnxruntime/{DEB_NAME}"
DEB_SHA256 = "14f7d959d5deacbcf1504830d4189f91fc67382b399ed9ae9d3aa9c4050ced08"
MEMBER_PREFIX = "./usr/include/onnxruntime/"
MARKER = "onnxruntime_cxx_api.h"


def _ar_members(blob: bytes):
    """Yield (name, data) of a Debian package's ar archive."""
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        pos += 60
        yield name, blob[pos:pos + size]
        pos += size + (size % 2)


def fetch(cache_root: Path) -> Path:
    """Return the include directory, downloading and unpacking the package on first use."""
    target = cache_root / "ort-headers" / "1.21.0"
    include = target / "onnxruntime"
    if (include / MARKER).is_file():
        return include
    url = os.environ.get("EMBEDRT_ORT_DEB_URL", DEB_URL)
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a pinned http URL, sha256-checked
        blob = response.read()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != DEB_SHA256:
        raise RuntimeError(f"{url}: sha256 {digest} != pinned {DEB_SHA256}")
    data = next((d for n, d in _ar_members(blob) if n.startswith("data.tar")), None)
    if data is None:
        raise RuntimeError(f"{url}: no data.tar member")
    target.parent.mkdir(parents=True, exist_ok=True)
    # NOTE: unpack into a temporary sibling and rename, so a concurrent or interrupted build never sees a half copy.
    tmp = Path(tempfile.mkdtemp(prefix=".ort-headers-", dir=target.parent))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(MEMBER_PREFIX):
                rel = member.name[len(MEMBER_PREFIX):]
                out = tmp / "onnxruntime" / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())
    if not (tmp / "onnxruntime" / MARKER).is_file():
        raise RuntimeError(f"{url}: {MARKER} not found in the package")
    try:
        os.replace(tmp, target)
    except OSError:  # another build won the race
        pass
    return include


def main() -> int:
    explicit = os.environ.get("EMBEDRT_ORT_INCLUDE_DIR")
    if explicit:
        if not (Path(explicit) / MARKER).is_file():
            print(f"EMBEDRT_ORT_INCLUDE_DIR={explicit} has no {MARKER}", file=sys.stderr)
            return 1
        print(explicit)
        return 0
    cache = Path(os.environ.get("EMBEDRT_CACHE_DIR") or Path.home() / ".cache" / "embedrt")
    try:
        print(fetch(cache))
    except Exception as e:  # noqa: BLE001 - reported to CMake, which decides whether it is fatal
        print(f"could not fetch the ONNX Runtime headers ({DEB_NAME}): {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
