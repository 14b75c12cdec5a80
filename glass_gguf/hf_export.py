"""A dense Hugging Face checkpoint from a GGUF (transformers, dequantized to float32).

A user who has only a GGUF computes a prior from this folder. The folder is written next to OUT_DIR under a
temporary name and renamed into place only when complete.
"""
from __future__ import annotations

import os
from pathlib import Path

from .atomic import atomic_folder
from .errors import ExportError
from .gguf_reader import open_gguf


def hf_export(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, *, overwrite: bool = False,
              progress: bool = False) -> Path:
    """Write config, float32 safetensors, generation config and tokenizer of `gguf_path` into `out_dir`; with
    `progress`, a bar of the three steps on stderr (transformers adds its own for the tensors it dequantizes)."""
    gguf_path = Path(gguf_path).resolve()
    out_dir = Path(out_dir).resolve()
    if not gguf_path.is_file():
        raise ExportError(f"{gguf_path}: no such file")
    if out_dir.exists() and not overwrite:
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise ExportError(f"{out_dir} already exists (pass --overwrite to replace it)")
    open_gguf(gguf_path)  # a corrupt or truncated file gets gguf_reader's message, not transformers' traceback
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with atomic_folder(out_dir) as tmp, tqdm(total=3, desc=f"hf-export {gguf_path.name}", unit="step",
                                             disable=not progress) as bar:
        kwargs = dict(gguf_file=gguf_path.name)
        try:
            bar.set_postfix_str("dequantizing the weights")
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf_path.parent), **kwargs, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32
            )
            bar.update()
            bar.set_postfix_str("reading the tokenizer")
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
            bar.update()
        except (ValueError, KeyError, NotImplementedError, OSError) as e:
            raise ExportError(f"{gguf_path.name}: transformers cannot load it: {str(e).splitlines()[0]}") from e
        bar.set_postfix_str("writing safetensors")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        bar.update()
        del model
    return out_dir
