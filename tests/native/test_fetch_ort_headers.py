"""csrc/fetch_ort_headers.py: the mirror comes from the apt sources (or EMBEDRT_ORT_DEB_URL), every candidate
is tried until one serves the pinned file, and the package is unpacked into the cache. No network: sample
sources files and file:// URLs."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "csrc" / "fetch_ort_headers.py"


@pytest.fixture()
def fetcher():
    spec = importlib.util.spec_from_file_location("fetch_ort_headers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _apt_dir(tmp_path: Path) -> Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(
        "# a comment\n"
        "deb http://mirror-a.example/debian bookworm main\n"
        "deb-src http://src-only.example/debian bookworm main\n"
        "deb [ arch=amd64 signed-by=/k.gpg ] http://mirror-b.example/debian/ bookworm main  # comment\n"
        "deb [arch=amd64] http://mirror-a.example/debian bookworm-updates main\n"
        "deb cdrom:[Debian 12]/ bookworm main\n"
        "#deb http://commented.example/debian bookworm main\n"
    )
    (apt / "sources.list.d" / "b.sources").write_text(
        "Types: deb\n"
        "URIs: http://mirror-c.example/debian\n"
        "  https://mirror-d.example/debian\n"
        "Suites: trixie\n"
        "Components: main\n"
        "\n"
        "Types: deb deb-src\n"
        "Enabled: no\n"
        "URIs: http://disabled.example/debian\n"
        "Suites: trixie\n"
        "   \n"
        "# a stanza of sources only\n"
        "Types: deb-src\n"
        "URIs: http://src-only-822.example/debian\n"
    )
    (apt / "sources.list.d" / "a.list").write_text("deb https://mirror-e.example/debian trixie main\n")
    (apt / "sources.list.d" / "c.list.disabled").write_text("deb http://ignored.example/debian trixie main\n")
    (apt / "sources.list.d" / "d.list.save").write_text("deb http://ignored2.example/debian trixie main\n")
    return apt


def test_mirrors_from_one_line_and_deb822_sources(fetcher, tmp_path):
    assert fetcher.apt_mirrors(_apt_dir(tmp_path)) == [
        "http://mirror-a.example/debian",
        "http://mirror-b.example/debian",
        "https://mirror-e.example/debian",
        "http://mirror-c.example/debian",
        "https://mirror-d.example/debian",
    ]


def test_no_sources_is_a_clear_error(fetcher, tmp_path):
    assert fetcher.apt_mirrors(tmp_path / "missing") == []
    with pytest.raises(RuntimeError, match="EMBEDRT_ORT_DEB_URL.*EMBEDRT_ORT_INCLUDE_DIR"):
        fetcher.candidate_urls({"EMBEDRT_APT_DIR": str(tmp_path / "missing")})


def test_candidates_are_the_pool_path_on_each_mirror_or_the_explicit_url(fetcher, tmp_path):
    env = {"EMBEDRT_APT_DIR": str(_apt_dir(tmp_path))}
    urls = fetcher.candidate_urls(env)
    assert urls[0] == f"http://mirror-a.example/debian/pool/main/o/onnxruntime/{fetcher.DEB_NAME}"
    assert len(urls) == 5 and all(u.endswith("/" + fetcher.POOL_PATH) for u in urls)
    env["EMBEDRT_ORT_DEB_URL"] = "http://elsewhere.example/x.deb"
    assert fetcher.candidate_urls(env) == ["http://elsewhere.example/x.deb"]


def _fake_deb(header_text: bytes = b"// fake\n") -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        info = tarfile.TarInfo("./usr/include/onnxruntime/onnxruntime_cxx_api.h")
        info.size = len(header_text)
        tar.addfile(info, io.BytesIO(header_text))
    out = b"!<arch>\n"
    for name, blob in ((b"debian-binary", b"2.0\n"), (b"data.tar.xz", data.getvalue())):
        out += name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
        out += str(len(blob)).encode().ljust(10) + b"`\n" + blob + (b"\n" if len(blob) % 2 else b"")
    return out


def test_download_tries_each_candidate_and_names_every_failure(fetcher, tmp_path):
    wrong = tmp_path / "wrong.deb"
    wrong.write_bytes(b"not the package")
    urls = [(tmp_path / "absent.deb").as_uri(), wrong.as_uri()]
    with pytest.raises(RuntimeError) as info:
        fetcher.download(urls)
    message = str(info.value)
    assert "absent.deb: URLError" in message
    assert f"wrong.deb: sha256 {hashlib.sha256(b'not the package').hexdigest()} != pinned" in message


def test_fetch_unpacks_the_first_good_mirror(fetcher, tmp_path, monkeypatch):
    deb = _fake_deb()
    mirror = tmp_path / "good" / "debian"
    (mirror / fetcher.POOL_PATH).parent.mkdir(parents=True)
    (mirror / fetcher.POOL_PATH).write_bytes(deb)
    apt = tmp_path / "apt"
    apt.mkdir()
    (apt / "sources.list").write_text(
        f"deb {(tmp_path / 'down').as_uri()} trixie main\ndeb {mirror.as_uri()} trixie main\n"
    )
    monkeypatch.setattr(fetcher, "DEB_SHA256", hashlib.sha256(deb).hexdigest())
    monkeypatch.setenv("EMBEDRT_APT_DIR", str(apt))
    monkeypatch.delenv("EMBEDRT_ORT_DEB_URL", raising=False)
    include = fetcher.fetch(tmp_path / "cache")
    assert (include / "onnxruntime_cxx_api.h").read_bytes() == b"// fake\n"
    assert include == tmp_path / "cache" / "ort-headers" / "1.21.0" / "onnxruntime"
