"""A small byte-level GGUF writer: key/value and tensor-info records, header and aligned data section.

gguf-py's GGUFWriter re-encodes keys and lays tensors out afresh; `convert` must instead carry every key and tensor
of a model over byte for byte so that `strip` gives the original file back exactly. So records are bytes here:
records copied from a model are written verbatim, and new ones (the glass.* keys, prior tensors) are encoded below.
"""
from __future__ import annotations

import struct

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType

_COPY_BLOCK = 64 << 20   # bytes per write when copying a model's data section

_SCALAR_FORMATS = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i", GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.FLOAT64: "<d", GGUFValueType.BOOL: "<?",
}
_NP_TYPES = {np.dtype(np.float32): GGMLQuantizationType.F32, np.dtype(np.float64): GGMLQuantizationType.F64,
             np.dtype(np.float16): GGMLQuantizationType.F16}


def align(n: int, alignment: int) -> int:
    return n + (-n % alignment)


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key: str, vtype: GGUFValueType, value) -> bytes:
    """One key/value record (string or scalar)."""
    return _str(key) + struct.pack("<I", int(vtype)) + _value(vtype, value)


def kv_array(key: str, itype: GGUFValueType, values) -> bytes:
    """One key/value record holding an array of strings or scalars (a numpy array of numbers is packed at once)."""
    head = _str(key) + struct.pack("<IIQ", int(GGUFValueType.ARRAY), int(itype), len(values))
    if itype == GGUFValueType.STRING:
        return head + b"".join(_str(v) for v in values)
    fmt = _SCALAR_FORMATS[itype]
    return head + np.asarray(values, dtype=np.dtype(fmt)).tobytes()


def _value(vtype: GGUFValueType, value) -> bytes:
    if vtype == GGUFValueType.STRING:
        return _str(value)
    return struct.pack(_SCALAR_FORMATS[vtype], value)


def tensor_info(name: str, arr: np.ndarray, offset: int) -> bytes:
    """The tensor-info record of a float32/float64 numpy array stored at `offset` in the data section."""
    return encode_tensor_info(name, list(reversed(arr.shape)), int(_NP_TYPES[arr.dtype]), offset)


def encode_tensor_info(name: str, ne: list[int], ggml_type: int, offset: int) -> bytes:
    return _str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne) + struct.pack("<IQ", ggml_type, offset)


def layout(arrays: list[tuple[str, np.ndarray]], alignment: int, start: int = 0):
    """(tensor-info records, data chunks, end offset) of named arrays placed one after another from `start`."""
    infos, chunks, offset = [], [], start
    for name, arr in arrays:
        offset = align(offset, alignment)
        infos.append(tensor_info(name, arr, offset))
        chunks.append((offset, memoryview(arr).cast("B")))
        offset += arr.nbytes
    return infos, chunks, offset


def write_header(f, magic_version: bytes, kvs: list[bytes], infos: list[bytes], alignment: int) -> None:
    head = magic_version + struct.pack("<QQ", len(infos), len(kvs))
    f.write(head)
    n = len(head)
    for b in kvs + infos:
        f.write(b)
        n += len(b)
    f.write(b"\0" * (-n % alignment))


def write_data(f, chunks, alignment: int) -> None:
    """Write (relative offset, bytes) chunks in order, zero-padding to each offset and to the final alignment."""
    pos = 0
    for offset, data in chunks:
        if offset < pos:
            raise AssertionError("tensor data chunks overlap")
        f.write(b"\0" * (offset - pos))
        copy(f, data)
        pos = offset + len(data)
    f.write(b"\0" * (-pos % alignment))


def copy(f, data) -> None:
    """Write a large buffer in blocks (a model's data section is copied without loading it into RAM)."""
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    for start in range(0, len(view), _COPY_BLOCK):
        f.write(view[start : start + _COPY_BLOCK])
