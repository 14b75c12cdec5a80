"""Reading GGUFs: the fast vocabulary parse equals gguf-py's, and a bad file gets one clear error."""
import os

import pytest
from gguf import GGUFReader

from glass_gguf.errors import FileAccessError, GlassFormatError
from glass_gguf.gguf_reader import FastReader, field_value, open_gguf
from synthetic import tiny_gguf


def test_fast_reader_parses_exactly_like_gguf_py(smollm2_path):
    ours, theirs = FastReader(smollm2_path), GGUFReader(smollm2_path)
    assert list(ours.fields) == list(theirs.fields)
    for key, a in theirs.fields.items():
        b = ours.fields[key]
        assert (a.offset, a.types, a.data, len(a.parts)) == (b.offset, b.types, b.data, len(b.parts)), key
        assert all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a.parts, b.parts)), key
    assert [(t.name, t.data_offset, t.n_bytes) for t in ours.tensors] == [
        (t.name, t.data_offset, t.n_bytes) for t in theirs.tensors]
    assert field_value(ours, "tokenizer.ggml.tokens")[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def test_field_values_of_a_small_gguf(tmp_path):
    reader = open_gguf(tiny_gguf(tmp_path / "m.gguf", n_layer=3))
    assert field_value(reader, "general.architecture") == "llama"
    assert field_value(reader, "llama.block_count") == 3
    assert field_value(reader, "tokenizer.ggml.tokens")[:2] == ["tok0", "tok1"]
    assert field_value(reader, "no.such.key", "absent") == "absent"


def test_a_replaced_file_is_read_afresh(tmp_path):
    path = tiny_gguf(tmp_path / "m.gguf", n_layer=2)
    assert field_value(open_gguf(path), "llama.block_count") == 2
    tiny_gguf(tmp_path / "m2.gguf", n_layer=3).replace(path)
    assert field_value(open_gguf(path), "llama.block_count") == 3


@pytest.mark.parametrize("cut", [200, -1000])     # inside the key/value records; inside the tensor data
def test_a_truncated_gguf_is_refused_in_one_line(tmp_path, cut):
    data = tiny_gguf(tmp_path / "m.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:cut])
    with pytest.raises(GlassFormatError, match=r"^cut.gguf: (corrupt or )?truncated GGUF"):
        open_gguf(tmp_path / "cut.gguf")


def test_not_a_gguf_and_no_file(tmp_path):
    (tmp_path / "noise.gguf").write_bytes(b"NOPE" + bytes(1000))
    with pytest.raises(GlassFormatError, match="not a GGUF file"):
        open_gguf(tmp_path / "noise.gguf")
    with pytest.raises(FileAccessError, match="no such file"):
        open_gguf(tmp_path / "missing.gguf")


def test_a_fifo_a_device_or_a_folder_is_refused_before_it_is_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.gguf")       # opening it for reading would block until a writer comes
    for path, kind in [(tmp_path / "pipe.gguf", "a named pipe"), ("/dev/null", "a character device"),
                       (tmp_path, "a folder")]:
        with pytest.raises(FileAccessError, match=f"is {kind}.*, expected a regular file"):
            open_gguf(path)
