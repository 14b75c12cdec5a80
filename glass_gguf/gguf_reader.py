"""Reading GGUF files: a cached, memory-mapped gguf-py reader with one clear error for a bad file.

Parsing a large vocabulary takes seconds, so the last few readers are kept, keyed by the file's identity (inode,
size, modification time): a file replaced under the same name is read afresh.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType
from gguf.constants import GGUF_MAGIC
from gguf.quants import dequantize

from .errors import FileAccessError, GlassFormatError
from .paths import regular_file

_CACHED_READERS = 4
_READERS: dict[tuple, GGUFReader] = {}


def open_gguf(path: str | os.PathLike) -> GGUFReader:
    """A GGUFReader on `path`, with every failure (no such file, not a regular file, unreadable, not a GGUF,
    truncated, big-endian) turned into one clear error. A FIFO or device is refused before it is opened."""
    path = Path(path)
    st = regular_file(path)
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _READERS:
        try:
            _READERS[key] = _open(path, st.st_size)
        except OSError as e:
            raise FileAccessError(f"{path}: cannot read it: {e.strerror or e}") from e
        while len(_READERS) > _CACHED_READERS:
            _READERS.pop(next(iter(_READERS)))
    return _READERS[key]


class FastReader(GGUFReader):
    """GGUFReader with a faster parse of string arrays (vocabularies, merges): the same fields and parts.

    gguf-py builds each element through several numpy views (about 15 us each, 7 s for Qwen2.5's 300k strings);
    here the lengths are read with struct and only the two parts each string needs are sliced.
    """

    def _get_field_parts(self, orig_offs, raw_type):
        if GGUFValueType(raw_type) != GGUFValueType.ARRAY or self.byte_order != "I":
            return super()._get_field_parts(orig_offs, raw_type)
        raw_itype = self._get(orig_offs, np.uint32)
        alen = self._get(orig_offs + 4, np.uint64)
        n = int(alen[0])
        mm = self.data.view(np.ndarray)  # slicing a plain ndarray is much cheaper than slicing the memmap
        parts: list = [raw_itype, alen]
        offs = orig_offs + 12
        itype = GGUFValueType(raw_itype[0])
        scalar = self.gguf_scalar_to_np.get(itype)
        if scalar is not None:  # numbers: one view, one single-element part per element, as gguf-py has them
            size = np.dtype(scalar).itemsize
            if offs + n * size > len(mm):
                raise ValueError(f"array at offset {orig_offs} runs past the end of the file")
            values = mm[offs : offs + n * size].view(scalar)
            parts += [values[k : k + 1] for k in range(n)]
            return 12 + n * size, parts, list(range(2, 2 + n)), [GGUFValueType.ARRAY, itype]
        if itype != GGUFValueType.STRING:
            return super()._get_field_parts(orig_offs, raw_type)
        buf = memoryview(mm)
        idxs = []
        for _ in range(n):
            (slen,) = struct.unpack_from("<Q", buf, offs)
            if offs + 8 + slen > len(mm):
                raise ValueError(f"string array at offset {orig_offs} runs past the end of the file")
            parts.append(mm[offs : offs + 8].view(np.uint64))
            parts.append(mm[offs + 8 : offs + 8 + slen])
            idxs.append(len(parts) - 1)
            offs += 8 + slen
        return offs - orig_offs, parts, idxs, [GGUFValueType.ARRAY, GGUFValueType.STRING]


def _open(path: Path, size: int) -> GGUFReader:
    try:
        reader = FastReader(path)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeDecodeError, struct.error) as e:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != struct.pack("<I", GGUF_MAGIC):
            raise GlassFormatError(f"{path.name}: not a GGUF file (magic {magic!r})") from e
        raise GlassFormatError(f"{path.name}: corrupt or truncated GGUF ({e})") from e
    if reader.byte_order != "I":
        raise GlassFormatError(f"{path.name}: big-endian GGUF files are not supported")
    end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=reader.data_offset)
    if end > size:
        raise GlassFormatError(f"{path.name}: truncated GGUF: tensor data needs {end} bytes, the file has {size}")
    return reader


def field_value(reader: GGUFReader, key: str, default=None):
    """A key's value as a Python object (str, int, float, or a list of them), or `default` if absent."""
    f = reader.get_field(key)
    if f is None:
        return default
    if f.types and f.types[0] == GGUFValueType.ARRAY:
        if f.types[-1] == GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]
        return [x.item() for i in f.data for x in f.parts[i]]
    if f.types == [GGUFValueType.STRING]:
        return bytes(f.parts[-1]).decode("utf-8", errors="replace")
    value = f.contents()
    return value.item() if isinstance(value, np.generic) else value


def field_array(reader: GGUFReader, key: str) -> np.ndarray | None:
    """A numeric array key as one numpy array (its element type), or None if absent or not a numeric array."""
    f = reader.get_field(key)
    if f is None or len(f.types) != 2 or f.types[0] != GGUFValueType.ARRAY or f.types[1] == GGUFValueType.STRING:
        return None
    if not f.data:
        return np.zeros(0, dtype=reader.gguf_scalar_to_np[f.types[1]])
    return np.concatenate([f.parts[i] for i in f.data])


def tensor_array(t) -> np.ndarray:
    """A tensor as a float32/float64 numpy array in its numpy shape (dequantized if needed)."""
    if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F64):
        return np.asarray(t.data)
    return dequantize(np.asarray(t.data), t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))
