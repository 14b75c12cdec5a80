"""The patched llama-cpp-python build: it loads, generates, exposes the GLASS API, and the recipe fails loudly."""
import subprocess
import sys

import llama_cpp

from glass_gguf import runtime
from glass_gguf.doctor import report

from conftest import REPO

BUILD_TOOL = REPO / "tools" / "build_llama_cpp_python.py"


def run_build_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILD_TOOL), *args], capture_output=True, text=True)


def test_patched_library_reports_the_glass_api_version_the_bindings_expect():
    assert runtime.api_version() == runtime.EXPECTED_API_VERSION == 10
    assert runtime.glass_library() is runtime.llama_library()


def test_doctor_reports_the_glass_api():
    info = report()
    assert info["glass_api"] is True
    assert info["glass_api_version"] == runtime.EXPECTED_API_VERSION
    assert info["llama_cpp_python_version"] == "0.3.36"
    assert "GGML_NATIVE=OFF" in info["build_flags"]["cmake_flags"]


def test_patched_build_generates_16_greedy_tokens(smollm2_path):
    llm = llama_cpp.Llama(model_path=str(smollm2_path), n_ctx=256, n_threads=2, verbose=False, seed=0)
    out = llm.create_completion("The capital of France is", max_tokens=16, temperature=0.0)
    text = out["choices"][0]["text"]
    assert out["usage"]["completion_tokens"] == 16
    assert len(text.strip()) > 0
    # greedy decoding is deterministic
    again = llm.create_completion("The capital of France is", max_tokens=16, temperature=0.0)
    assert again["choices"][0]["text"] == text


def test_wrong_sdist_digest_stops_the_build():
    result = run_build_tool("--prepare-only", "--sdist-sha256", "0" * 64)
    assert result.returncode == 2
    assert "sdist digest mismatch" in result.stderr
    assert "expected sha256 " + "0" * 64 in result.stderr


def test_patch_that_does_not_apply_stops_the_build_naming_it(tmp_path):
    for patch in sorted((REPO / "patches" / "llama.cpp").glob("*.patch")):
        (tmp_path / patch.name).write_bytes(patch.read_bytes())
    (tmp_path / "9999-broken.patch").write_text(
        "--- a/src/llama.cpp\n+++ b/src/llama.cpp\n@@ -1,3 +1,3 @@\n-this line is not in llama.cpp\n"
        "+nor is this one\n context that does not exist\n context either\n"
    )
    result = run_build_tool("--prepare-only", "--patches", str(tmp_path))
    assert result.returncode == 2
    assert "patch 9999-broken.patch does not apply" in result.stderr


def test_unpatched_library_gives_a_clear_error(monkeypatch):
    class StockLibrary:  # what llama-cpp-python's _lib looks like without our patches: no GLASS symbols
        _name = "/site-packages/llama_cpp/lib/libllama.so"

    monkeypatch.setattr(runtime, "llama_library", lambda: StockLibrary())
    runtime.glass_library.cache_clear()
    try:
        assert runtime.api_version(StockLibrary()) is None
        try:
            runtime.glass_library()
        except runtime.GlassUnavailableError as e:
            assert "not patched for GLASS" in str(e)
            assert "build_llama_cpp_python.py" in str(e)
        else:
            raise AssertionError("an unpatched library was accepted")
    finally:
        runtime.glass_library.cache_clear()


def test_upstream_offline_tests_pass_against_the_patched_build(build_info):
    """llama-cpp-python's own offline tests, from the same sdist, guard that our patches break nothing upstream."""
    source = build_info["source"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_llama_chat_format.py", "tests/test_llama_grammar.py",
         "tests/test_llama.py::test_llama_cpp_version", "tests/test_llama.py::test_llama_cpp_tokenization"],
        cwd=source, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
