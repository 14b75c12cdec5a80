"""Soak benchmark: many chat requests to llama-cpp-python's server, or to llama.cpp's llama-server, over loopback,
as real clients send them.

Unrelated questions are mixed with two-turn conversations (MT-Bench's own second turns). Two things are measured:
how much the server's memory grows after warm-up, and how many answers differ from the answer a fresh context
gives to the same conversation (the runtime's lifecycle rule says: none, whatever was asked before).

A second turn asked right after its first keeps the first turn's prompt in the KV cache and reads the rest as a
second batch; llama.cpp's attention rounds a split prompt differently from a whole one, dense decoding included, so
the fresh context is then asked the first turn too: it holds the cache a conversation leaves, nothing else.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .server import chat, chat_reply, llama_cpp_server, llama_server, rss_mb
from .settings import physical_cores


def request_plan(questions: list[dict], n_requests: int) -> list[tuple[int, int]]:
    """(question index, turn) pairs: every third question is a two-turn conversation, the rest single requests."""
    plan: list[tuple[int, int]] = []
    i = 0
    while len(plan) < n_requests:
        q = i % len(questions)
        plan.append((q, 0))
        if i % 3 == 2 and len(questions[q]["turns"]) > 1 and len(plan) < n_requests:
            plan.append((q, 1))
        i += 1
    return plan


def fresh_answer(model_path, requests: list[list[dict]], n_ctx: int, threads: int, max_tokens: int) -> str:
    """What a brand-new context answers to the last of these requests, asked in order, built by the server's own
    loader from the same settings (llama_cpp.server defaults to logits_all=True, which changes the numerics of the
    last layer), greedy."""
    from llama_cpp.server.model import LlamaProxy
    from llama_cpp.server.settings import ModelSettings

    settings = ModelSettings(model=str(model_path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                             verbose=False)
    llm = LlamaProxy.load_llama_from_model_settings(settings)
    try:
        for messages in requests:
            out = llm.create_chat_completion(messages, temperature=0.0, max_tokens=max_tokens, seed=0)
        return out["choices"][0]["message"]["content"]
    finally:
        llm.close()


def fresh_server_answer(binary, model_path, requests: list[list[dict]], n_ctx: int, threads: int, max_tokens: int,
                        log_path) -> str:
    """What a brand-new llama-server process answers to the last of these requests, asked in order."""
    with llama_server(binary, model_path, log_path=log_path, n_ctx=n_ctx, threads=threads) as server:
        return [chat(server.url, messages, max_tokens=max_tokens) for messages in requests][-1]


def conversation_so_far(plan: list[tuple[int, int]], asked: list[list[dict]], n: int) -> list[list[dict]]:
    """The requests a fresh context is asked to reproduce request n (0-based): its conversation's first turn too
    when the server answered that turn just before, so both hold the same KV cache."""
    q, turn = plan[n]
    if turn == 1 and n > 0 and plan[n - 1] == (q, 0):
        return [asked[n - 1], asked[n]]
    return [asked[n]]


def prompt_cache_mb(log_text: str, n_requests: int) -> float:
    """llama-server's RAM prompt cache (`--cache-ram`, 8 GiB by default) while it served request n_requests: the
    size its log reported when that request started (it saves the previous request's state then). 0 for a server
    without one (llama_cpp.server)."""
    size, started = 0.0, 0
    for line in log_text.splitlines():
        if "new prompt, n_ctx_slot" in line:
            started += 1
            if started == n_requests:
                break
        elif "cache state:" in line:
            size = float(line.split("prompts, ")[1].split(" MiB")[0])
    return size


def growth_after_high_water(positions: list[int], rss: list[float], warmup: int) -> tuple[int, float]:
    """(request, growth %): the last request after warm-up that took the conversation further into the context than
    any before it (1-based; the warm-up's last request when none did), and RSS growth from it to the end. Buffers
    sized by position fill up to the furthest position so far (the KV cache's pages, llama_cpp.server's logits of
    every position under its default logits_all=True): growth after that point is growth they do not explain."""
    furthest, at = max(positions[:warmup], default=0), warmup
    for n in range(warmup, len(positions)):
        if positions[n] > furthest:
            furthest, at = positions[n], n + 1
    return at, round(100 * (rss[-1] / rss[at - 1] - 1), 2)


def run_soak(model_path, *, n_requests: int = 300, max_tokens: int = 48, n_ctx: int = 2048, threads: int = 2,
             warmup: int = 30, log_path="soak-server.log", progress=None, server_binary=None) -> dict:
    """server_binary: llama.cpp's llama-server to soak (None: llama_cpp.server); every answer is compared with a
    fresh context's (llama_cpp.server: a new Llama from the server's own settings; llama-server: a new process)."""
    from .datasets import mtbench_questions

    questions = mtbench_questions()
    plan = request_plan(questions, n_requests)
    progress = progress or (lambda msg: None)
    asked: list[list[dict]] = []
    answers: list[str] = []
    positions: list[int] = []   # the context positions each request reached (prompt and answer tokens)
    rss_by_request: list[float] = []
    last_answer: dict[int, str] = {}
    t0 = time.monotonic()
    serve = (llama_cpp_server if server_binary is None else
             lambda *a, **kw: llama_server(server_binary, *a, **kw))
    with serve(model_path, log_path=log_path, n_ctx=n_ctx, threads=threads) as server:
        url, pid = server
        rss_start = rss_mb(pid)
        rss_warm = rss_start
        for n, (q, turn) in enumerate(plan, 1):
            turns = questions[q]["turns"]
            messages = [{"role": "user", "content": turns[0]}]
            if turn == 1:
                messages += [{"role": "assistant", "content": last_answer[q]}, {"role": "user", "content": turns[1]}]
            reply = chat_reply(url, messages, max_tokens=max_tokens)
            answer = reply["choices"][0]["message"]["content"]
            positions.append(reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"])
            rss_by_request.append(round(rss_mb(pid), 1))
            last_answer[q] = answer
            asked.append(messages)
            answers.append(answer)
            if n == warmup:
                rss_warm = rss_mb(pid)
            if n % 10 == 0 or n == len(plan):
                progress(f"server: {n}/{len(plan)} requests, RSS {rss_mb(pid):.0f} MB, {time.monotonic() - t0:.0f} s")
        rss_end = rss_mb(pid)
    log_text = Path(log_path).read_text(errors="replace")
    selections = log_text.count("glass: decoding sparse")
    cache_warm, cache_end = prompt_cache_mb(log_text, min(warmup, len(plan))), prompt_cache_mb(log_text, len(plan))
    high_water, growth_after = growth_after_high_water(positions, rss_by_request, min(warmup, len(plan)))

    differ = []
    fresh_log = Path(log_path).with_suffix(".fresh.log")
    for n, answer in enumerate(answers, 1):
        requests = conversation_so_far(plan, asked, n - 1)
        fresh = (fresh_answer(model_path, requests, n_ctx, threads, max_tokens) if server_binary is None else
                 fresh_server_answer(server_binary, model_path, requests, n_ctx, threads, max_tokens, fresh_log))
        if fresh != answer:
            differ.append(n)
        if n % 10 == 0 or n == len(asked):
            progress(f"fresh contexts: {n}/{len(asked)} answers compared, {len(differ)} differ")
    return {
        "model": str(model_path), "server": "llama_cpp.server" if server_binary is None else "llama-server",
        "requests": len(plan), "two_turn_requests": sum(t for _, t in plan),
        "max_tokens": max_tokens, "n_ctx": n_ctx, "threads": threads, "warmup_requests": warmup,
        "rss_start_mb": round(rss_start, 1), "rss_after_warmup_mb": round(rss_warm, 1),
        "rss_end_mb": round(rss_end, 1), "rss_growth_after_warmup_pct": round(100 * (rss_end / rss_warm - 1), 2),
        "prompt_cache_after_warmup_mb": cache_warm, "prompt_cache_end_mb": cache_end,
        "rss_growth_after_warmup_without_prompt_cache_pct":
            round(100 * ((rss_end - cache_end) / (rss_warm - cache_warm) - 1), 2),
        "furthest_position_request": high_water, "furthest_position": max(positions),
        "rss_growth_after_furthest_position_pct": growth_after,
        "answers_differing_from_fresh": len(differ), "differing_requests": differ,
        "sparse_selections": selections, "seconds": round(time.monotonic() - t0, 1),
        "positions_by_request": positions, "rss_mb_by_request": rss_by_request,
    }


def _renamed(new: str):
    def callback(ctx, param, value):
        if value is not None:
            raise click.BadParameter(f"renamed: use {new}")
    return callback


@click.command("soak")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--requests", "n_requests", type=click.IntRange(1), default=300, help="chat requests to send")
@click.option("--gen-tokens", type=click.IntRange(1), default=48, help="max tokens per answer")
@click.option("--n-ctx", type=click.IntRange(64), default=2048, help="server context size")
@click.option("--threads", type=click.IntRange(1), default=physical_cores(),
              help="server threads (default: one per physical core)")
@click.option("--warmup-requests", type=click.IntRange(1), default=30,
              help="requests before the memory baseline is taken")
@click.option("-o", "--output", "log_path", type=click.Path(dir_okay=False), default="soak-server.log",
              help="the server's log")
@click.option("--warmup", hidden=True, expose_value=False, callback=_renamed("--warmup-requests (requests; "
              "--warmup elsewhere means generated tokens decoded dense)"))
@click.option("--log", hidden=True, expose_value=False, callback=_renamed("-o/--output"))
@click.option("--server", type=click.Choice(["llama_cpp.server", "llama-server"]), default="llama_cpp.server",
              show_default=True, help="llama-cpp-python's server, or llama.cpp's llama-server (built as build-native "
                                      "does, if it is not yet)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object to stdout")
def soak_command(model, n_requests, gen_tokens, n_ctx, threads, warmup_requests, log_path, server, as_json):
    """Soak a server with GLASS: RSS growth after warm-up and answers that differ from a fresh context's."""
    from .atomic import check_writable

    check_writable(log_path)
    binary = None
    if server == "llama-server":
        from .native import native_binaries

        binary = native_binaries("host", only=("llama-server",)) / "llama-server"
    result = run_soak(model, n_requests=n_requests, max_tokens=gen_tokens, n_ctx=n_ctx, threads=threads,
                      warmup=min(warmup_requests, n_requests), log_path=log_path,
                      progress=lambda msg: click.echo(msg, err=True), server_binary=binary)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        if key.endswith("_by_request"):
            continue   # the series are for --json and the plot
        click.echo(f"{key:32} {value}")
    if result["answers_differing_from_fresh"]:
        sys.exit(1)
