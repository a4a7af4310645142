"""``embedrt build-ops``: build the native pooling library (csrc/) with CMake, outside of pip.

``pip install .`` already builds it when a C++ compiler is at hand; this command rebuilds it in place (after
installing a compiler, or to add the CUDA kernel) without reinstalling. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .errors import InputError, NativeOpsError

CUDA_CHOICES = ("auto", "on", "off")


def find_source(start: Path | None = None) -> Path | None:
    """The checkout with CMakeLists.txt and csrc/, searched upwards from the package (editable installs)."""
    here = (start or Path(__file__)).resolve()
    for parent in [here, *here.parents]:
        if (parent / "CMakeLists.txt").is_file() and (parent / "csrc" / "ops.cc").is_file():
            return parent
    return None


def default_output() -> Path:
    """``embedrt/_native/`` in the first directory of the package, where the runtime looks first."""
    import embedrt

    return Path(list(embedrt.__path__)[0]) / "_native"


def build_ops(
    source: str | os.PathLike | None = None,
    build_dir: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    cuda: str = "auto",
    jobs: int | None = None,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Configure and build libembedrt_ops, then copy it where the runtime finds it.

    Args:
        source: the checkout (CMakeLists.txt + csrc/); default: found upwards from this package.
        build_dir: CMake build directory; default ``<source>/build/ops``.
        output: directory to copy the library into; default ``embedrt/_native/`` of this package.
        cuda: ``auto`` (CUDA kernel when nvcc is found), ``on`` (required) or ``off``.
        jobs: parallel compile jobs (default: CPU count).
        log: receives each command and CMake's output lines.

    Returns:
        The path of the installed library.

    Raises:
        InputError: an unknown ``cuda`` choice.
        NativeOpsError: no sources, no cmake, or the build failed (the message holds the output's tail).
    """
    if cuda not in CUDA_CHOICES:
        raise InputError(f"unknown cuda {cuda!r}; valid choices: {', '.join(CUDA_CHOICES)}")
    src = Path(source) if source else find_source()
    if src is None or not (src / "CMakeLists.txt").is_file():
        raise NativeOpsError(
            "the native sources (CMakeLists.txt, csrc/) were not found; pass --source CHECKOUT "
            "(a git clone of embedrt)"
        )
    cmake = shutil.which("cmake")
    if cmake is None:
        raise NativeOpsError(
            "cmake not found on PATH; install it (apt-get install cmake, or pip install cmake)"
        )
    build = Path(build_dir) if build_dir else src / "build" / "ops"
    out_dir = Path(output) if output else default_output()
    commands = [
        [
            cmake,
            "-S",
            str(src),
            "-B",
            str(build),
            f"-DEMBEDRT_CUDA={cuda.upper()}",
            "-DEMBEDRT_REQUIRE_NATIVE=ON",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        [cmake, "--build", str(build), "-j", str(jobs or os.cpu_count() or 1)],
    ]
    for cmd in commands:
        if log:
            log("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        if log:
            log(proc.stdout.rstrip())
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
            raise NativeOpsError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{tail}")
    from .runtime.native import LIBRARY_NAME

    built = build / LIBRARY_NAME
    if not built.is_file():
        raise NativeOpsError(f"the build finished but {built} is missing")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / LIBRARY_NAME
    # NOTE: copy then rename, so a process that has the old library mapped keeps a valid file.
    tmp = out_dir / f".{LIBRARY_NAME}.{os.getpid()}"
    shutil.copy2(built, tmp)
    os.replace(tmp, target)
    if log:
        log(f"installed {target}")
    return target


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``build-ops`` on the ``embedrt`` command line."""
    p = sub.add_parser("build-ops", help="build the native fused-pooling op library (C++, CUDA with nvcc)")
    p.add_argument(
        "--cuda",
        choices=CUDA_CHOICES,
        default="auto",
        help="build the CUDA kernel: auto (when nvcc is found, default), on (required), off",
    )
    p.add_argument(
        "--source", default=None, help="checkout with CMakeLists.txt and csrc/ (default: found upwards)"
    )
    p.add_argument("--build-dir", default=None, help="CMake build directory (default: <source>/build/ops)")
    p.add_argument(
        "--output", default=None, help="directory to install the library into (default: embedrt/_native)"
    )
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel compile jobs (default: CPU count)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the installed path")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    path = build_ops(
        args.source, args.build_dir, args.output, args.cuda, args.jobs, log=None if args.quiet else print
    )
    if args.quiet:
        print(path)
    return 0
