"""Fetch the ONNX Runtime C/C++ headers that the custom-op library compiles against.

    python csrc/fetch_ort_headers.py            # prints the include directory (downloads once)

No PyPI wheel ships these headers (onnxruntime, onnxruntime-gpu, -extensions, -genai all lack them), and the
project must not vendor them, so they come from Debian's ``libonnxruntime-dev`` (trixie, 1.21.0, C API 21),
downloaded by its pinned pool file name and sha256, and unpacked into a per-user cache. The mirror is the one
the machine's apt sources name (``/etc/apt/sources.list``, ``sources.list.d/*.list`` one-line entries and
``*.sources`` deb822 stanzas; every enabled ``deb`` URI is tried in file order until one serves the file).
API 21 headers work with any newer runtime (ORT serves every older API version); RegisterCustomOps checks
for the opposite case.
Standard library only: CMake runs this before anything else is installed.

Environment:
    EMBEDRT_ORT_INCLUDE_DIR  use this directory (must hold onnxruntime_cxx_api.h) and download nothing
    EMBEDRT_ORT_DEB_URL      the URL of the .deb (instead of the apt mirrors); the sha256 is still checked
    EMBEDRT_APT_DIR          where the apt sources are read (default: /etc/apt)
    EMBEDRT_CACHE_DIR        cache root (default: ~/.cache/embedrt)
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

DEB_NAME = "libonnxruntime-dev_1.21.0+dfsg-1_amd64.deb"
POOL_PATH = f"pool/main/o/onnxruntime/{DEB_NAME}"
DEB_SHA256 = "14f7d959d5deacbcf1504830d4189f91fc67382b399ed9ae9d3aa9c4050ced08"
MEMBER_PREFIX = "./usr/include/onnxruntime/"
MARKER = "onnxruntime_cxx_api.h"


def _ar_members(blob: bytes):
    """Yield (name, data) of a Debian package's ar archive."""
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        pos += 60
        yield name, blob[pos : pos + size]
        pos += size + (size % 2)


def _one_line_uris(text: str) -> list[str]:
    """URIs of the ``deb`` lines of a one-line-style sources.list (``deb [options] URI suite components``)."""
    uris = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        rest = words[1:]
        if rest and rest[0].startswith("["):  # options, possibly spread over several words: "[ arch=amd64 ]"
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if rest:
            uris.append(rest[0])
    return uris


def _deb822_uris(text: str) -> list[str]:
    """URIs of the enabled stanzas of type ``deb`` of a deb822 ``.sources`` file."""
    uris = []
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:  # a continuation line
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        uris.extend(fields.get("uris", "").split())
    return uris


def apt_mirrors(apt_dir: Path) -> list[str]:
    """The distinct base URIs of the binary repositories that ``apt_dir``'s sources enable, in file order."""
    files = [apt_dir / "sources.list"] if (apt_dir / "sources.list").is_file() else []
    listed = apt_dir / "sources.list.d"
    if listed.is_dir():
        files += sorted(p for p in listed.iterdir() if p.is_file() and p.suffix in (".list", ".sources"))
    found: list[str] = []
    for path in files:
        text = path.read_text(errors="replace")
        for uri in _deb822_uris(text) if path.suffix == ".sources" else _one_line_uris(text):
            uri = uri.rstrip("/")
            if uri.split(":", 1)[0] in ("http", "https", "ftp", "file") and uri not in found:
                found.append(uri)
    return found


def candidate_urls(env: dict | None = None) -> list[str]:
    """Where to download the package: ``EMBEDRT_ORT_DEB_URL`` alone when set, else each apt mirror's pool."""
    env = os.environ if env is None else env
    if env.get("EMBEDRT_ORT_DEB_URL"):
        return [env["EMBEDRT_ORT_DEB_URL"]]
    apt_dir = Path(env.get("EMBEDRT_APT_DIR") or "/etc/apt")
    mirrors = apt_mirrors(apt_dir)
    if not mirrors:
        raise RuntimeError(
            f"no apt mirror found in {apt_dir}/sources.list or {apt_dir}/sources.list.d/; set "
            f"EMBEDRT_ORT_DEB_URL to the URL of {DEB_NAME}, or EMBEDRT_ORT_INCLUDE_DIR to a directory with "
            "the headers"
        )
    return [f"{m}/{POOL_PATH}" for m in mirrors]


def download(urls: list[str]) -> tuple[str, bytes]:
    """The first of ``urls`` that serves the package with the pinned sha256; the error lists every attempt."""
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - sha256-checked below
                blob = response.read()
        except Exception as e:  # noqa: BLE001 - an unreachable or incomplete mirror: try the next one
            failures.append(f"{url}: {type(e).__name__}: {e}")
            continue
        digest = hashlib.sha256(blob).hexdigest()
        if digest == DEB_SHA256:
            return url, blob
        failures.append(f"{url}: sha256 {digest} != pinned {DEB_SHA256}")
    raise RuntimeError("; ".join(failures))


def fetch(cache_root: Path) -> Path:
    """Return the include directory, downloading and unpacking the package on first use."""
    target = cache_root / "ort-headers" / "1.21.0"
    include = target / "onnxruntime"
    if (include / MARKER).is_file():
        return include
    url, blob = download(candidate_urls())
    data = next((d for n, d in _ar_members(blob) if n.startswith("data.tar")), None)
    if data is None:
        raise RuntimeError(f"{url}: no data.tar member")
    target.parent.mkdir(parents=True, exist_ok=True)
    # NOTE: unpack into a temporary sibling and rename, so a concurrent or interrupted build never sees a half
    # copy.
    tmp = Path(tempfile.mkdtemp(prefix=".ort-headers-", dir=target.parent))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(MEMBER_PREFIX):
                rel = member.name[len(MEMBER_PREFIX) :]
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
        print(
            f"could not fetch the ONNX Runtime headers ({DEB_NAME}): {type(e).__name__}: {e}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
