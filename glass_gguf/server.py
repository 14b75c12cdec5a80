"""llama-cpp-python's OpenAI-compatible server, or llama.cpp's llama-server, as a client sees it: start it on
loopback, send chat requests.

    with llama_cpp_server("model.glass.gguf", log_path="server.log") as server:
        print(chat(server.url, [{"role": "user", "content": "Why is the sky blue?"}], max_tokens=64))

Used by the soak benchmark and by the tests, so both talk to the real server over HTTP.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple


class Server(NamedTuple):
    url: str  # http://127.0.0.1:PORT
    pid: int


class ServerError(RuntimeError):
    """The server did not start or answered with an error; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float, name: str) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.25)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
    raise ServerError(f"{name} did not start within {timeout_s:.0f} s:\n{tail}")


@contextlib.contextmanager
def llama_cpp_server(model_path, *, log_path, n_ctx: int = 2048, threads: int = 2, env: dict | None = None,
                     extra_args: tuple[str, ...] = (), timeout_s: float = 120.0):
    """`python -m llama_cpp.server` on a free loopback port; yields Server(url, pid) and stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(log_path)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch",
           str(threads), "--verbose", "true", *extra_args]
    with _running(cmd, url, Path(log_path), env, timeout_s, "llama_cpp.server") as server:
        yield server


@contextlib.contextmanager
def llama_server(binary, model_path, *, log_path, n_ctx: int = 2048, threads: int = 2, env: dict | None = None,
                 extra_args: tuple[str, ...] = (), timeout_s: float = 120.0):
    """llama.cpp's own `llama-server` (glass-gguf build-native) on a free loopback port, with its default slots (one
    for a model that runs GLASS, patch 0013); yields Server(url, pid) and stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(binary), "-m", str(model_path), "--host", "127.0.0.1", "--port", str(port), "-c", str(n_ctx),
           "-t", str(threads), "--seed", "0", "-fit", "off", "-lv", "4", *extra_args]
    with _running(cmd, url, Path(log_path), env, timeout_s, "llama-server") as server:
        yield server


@contextlib.contextmanager
def _running(cmd: list[str], url: str, log_path: Path, env: dict | None, timeout_s: float, name: str):
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        _wait_ready(url, proc, log_path, timeout_s, name)
        yield Server(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chat_reply(url: str, messages: list[dict], max_tokens: int = 64, timeout_s: float = 300.0) -> dict:
    """One greedy OpenAI-style chat completion, the server's whole JSON reply (choices, usage). repeat_penalty 1 (no
    penalty), as Llama.create_chat_completion's default: the server's own default of 1.1 changes the greedy token."""
    import httpx

    reply = httpx.post(f"{url}/v1/chat/completions", timeout=timeout_s, json={
        "messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "seed": 0, "repeat_penalty": 1.0,
    })
    if reply.status_code != 200:
        raise ServerError(f"the server answered {reply.status_code}: {reply.text[:500]}")
    return reply.json()


def chat(url: str, messages: list[dict], max_tokens: int = 64, timeout_s: float = 300.0) -> str:
    """One greedy chat completion (as chat_reply); the assistant's text."""
    return chat_reply(url, messages, max_tokens, timeout_s)["choices"][0]["message"]["content"]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ServerError(f"no VmRSS for process {pid}")
