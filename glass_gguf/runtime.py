"""ctypes bindings to the GLASS C API of the patched libllama loaded by llama-cpp-python.

llama-cpp-python keeps its loaded library in llama_cpp.llama_cpp._lib; the GLASS functions are declared on it here,
once. A stock llama-cpp-python lacks them, and every entry point says so with the command that fixes it.
"""
from __future__ import annotations

import ctypes
import functools

EXPECTED_API_VERSION = 10

FIX_HINT = (
    "install glass-gguf's patched build: `python3 tools/build_llama_cpp_python.py` from the glass-gguf "
    "repository (or `make setup`), which replaces llama-cpp-python in .venv"
)


class GlassUnavailableError(RuntimeError):
    """The loaded libllama has no GLASS API (a stock llama-cpp-python) or an incompatible version of it."""


def llama_library() -> ctypes.CDLL:
    """The libllama that llama-cpp-python loaded (honours LLAMA_CPP_LIB_PATH, as llama-cpp-python does)."""
    try:
        from llama_cpp import llama_cpp as bindings
    except ImportError as e:
        raise GlassUnavailableError(f"llama-cpp-python is not installed ({e}); {FIX_HINT}") from e
    return bindings._lib


def api_version(lib: ctypes.CDLL | None = None) -> int | None:
    """llama_glass_api_version() of the loaded library, or None for an unpatched build."""
    lib = lib or llama_library()
    if not hasattr(lib, "llama_glass_api_version"):
        return None
    fn = lib.llama_glass_api_version
    fn.argtypes = []
    fn.restype = ctypes.c_int32
    return int(fn())


@functools.cache
def glass_library() -> ctypes.CDLL:
    """The loaded libllama with the GLASS functions declared; raises GlassUnavailableError if it has none."""
    lib = llama_library()
    version = api_version(lib)
    if version is None:
        raise GlassUnavailableError(
            f"the loaded llama-cpp-python library ({getattr(lib, '_name', '?')}) is not patched for GLASS: "
            f"it has no llama_glass_api_version(); {FIX_HINT}"
        )
    if version != EXPECTED_API_VERSION:
        raise GlassUnavailableError(
            f"the loaded libllama has GLASS API version {version}, this glass-gguf needs {EXPECTED_API_VERSION}; "
            f"{FIX_HINT}"
        )
    return lib


# --- the GLASS C API (include/llama-glass.h, llama_glass_*) -------------------------------------------------------------

STATUS_NAMES = {
    0: "OK", -1: "invalid argument", -2: "not enabled", -3: "no prior", -4: "unsupported model",
    -5: "no statistics", -6: "internal error",
}
STATES = {0: "off", 1: "collect", 2: "sparse"}
MODES = {"auto": 0, "manual": 1}
LAYER_SUPPORTED, LAYER_HAS_PRIOR, LAYER_SPARSE = 1, 2, 4

_c_ctx = ctypes.c_void_p

_SIGNATURES = {
    "llama_glass_default_params": ([_c_ctx, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)], ctypes.c_int32),
    "llama_glass_enable": ([_c_ctx, ctypes.c_void_p], ctypes.c_int32),   # const struct llama_glass_params *
    "llama_glass_disable": ([_c_ctx], ctypes.c_int32),
    "llama_glass_reset": ([_c_ctx], ctypes.c_int32),
    "llama_glass_finalize": ([_c_ctx], ctypes.c_int32),
    "llama_glass_get_info": ([_c_ctx, ctypes.c_void_p], ctypes.c_int32),   # struct llama_glass_info *
    "llama_glass_layer_info": ([_c_ctx, ctypes.c_int32, ctypes.POINTER(ctypes.c_int64),
                                ctypes.POINTER(ctypes.c_int32)], ctypes.c_int32),
    "llama_glass_set_prior": ([_c_ctx, ctypes.c_int32, ctypes.POINTER(ctypes.c_float), ctypes.c_int64],
                              ctypes.c_int32),
    "llama_glass_clear_priors": ([_c_ctx], ctypes.c_int32),
    "llama_glass_get_stats": ([_c_ctx, ctypes.c_int32, ctypes.POINTER(ctypes.c_double), ctypes.c_int64,
                               ctypes.POINTER(ctypes.c_int64)], ctypes.c_int32),
    "llama_glass_get_selected": ([_c_ctx, ctypes.c_int32, ctypes.POINTER(ctypes.c_int32), ctypes.c_int64,
                                  ctypes.POINTER(ctypes.c_int64)], ctypes.c_int32),
    "llama_glass_last_error": ([_c_ctx], ctypes.c_char_p),
    "llama_glass_set_prompt_end": ([_c_ctx, ctypes.c_int32], ctypes.c_int32),
    "llama_glass_reusable_prefix": ([_c_ctx, ctypes.c_int32], ctypes.c_int32),
    "llama_glass_layer_bytes": ([_c_ctx, ctypes.c_int32, ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64)],
                                ctypes.c_int32),
    "llama_glass_get_abs_sums": ([_c_ctx, ctypes.c_int32, ctypes.POINTER(ctypes.c_double), ctypes.c_int64,
                                  ctypes.POINTER(ctypes.c_int64)], ctypes.c_int32),
    "llama_glass_set_schedule": ([_c_ctx, ctypes.c_int32, ctypes.c_int32, ctypes.c_float], ctypes.c_int32),
    "llama_glass_get_layer_scale": ([_c_ctx, ctypes.POINTER(ctypes.c_float), ctypes.c_int32], ctypes.c_int32),
    "llama_glass_set_adapter": ([_c_ctx, ctypes.c_void_p], ctypes.c_int32),
}


class GlassError(RuntimeError):
    """A GLASS call failed; the message is the library's own explanation."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@functools.cache
def glass_api() -> ctypes.CDLL:
    """The patched library with every llama_glass_* function declared (argtypes/restype), once."""
    lib = glass_library()
    for name, (argtypes, restype) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype
    return lib


def _check(lib: ctypes.CDLL, ctx: int, status: int) -> int:
    if status < 0:
        message = (lib.llama_glass_last_error(ctx) or b"").decode() or STATUS_NAMES.get(status, str(status))
        raise GlassError(status, f"GLASS: {message}")
    return status


class GlassSession:
    """GLASS on one llama_cpp.Llama: enable, collect, finalize, and read back what the runtime chose.

        llm = llama_cpp.Llama(model_path=path)
        glass = GlassSession(llm)
        glass.enable(density=0.5, lam=0.5)            # auto mode: the prompt collects, decoding goes sparse
        llm.create_completion("Write a haiku", max_tokens=64)
    """

    def __init__(self, llm):
        self.lib = glass_api()
        self.llm = llm
        self.ctx = ctypes.c_void_p(llm.ctx)
        from llama_cpp import llama_cpp as bindings

        self.n_layer = int(bindings.llama_model_n_layer(llm.model))
        # settings chosen while GLASS is off (set_layer_scale, set_token_fraction), for the next enable: libllama
        # takes every setting at once (struct llama_glass_params)
        self._pending: dict = {}

    def _call(self, name: str, *args) -> int:
        return _check(self.lib, self.ctx, getattr(self.lib, name)(self.ctx, *args))

    def enable(self, density: float, lam: float, mode: str = "auto") -> None:
        """Start collecting with this density, lambda and mode; the schedule, layer scale and token fraction stay as
        they are (the model's, or what this session set)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        self._enable(density=float(density), lambda_=float(lam), mode=MODES[mode])
        self._forget_cached_prompt()

    def _enable(self, **changes) -> None:
        """llama_glass_enable with the settings in use, the pending ones and `changes` over them (libllama checks
        them all before it changes anything)."""
        import numpy as np
        from llama_cpp.glass_policy import GlassParams

        info = self.info()
        settings = {"density": info.density, "lambda_": info.lambda_, "mode": info.mode, "warmup": info.warmup,
                    "refresh": info.refresh, "min_change": info.min_change, "token_fraction": info.token_fraction,
                    "layer_scale": self.layer_scale(), **self._pending, **changes}
        arr = np.ascontiguousarray(settings.pop("layer_scale"), dtype=np.float32)
        params = GlassParams(**settings, n_layer_scale=arr.shape[0])
        if arr.shape[0]:
            params.layer_scale = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self._call("llama_glass_enable", ctypes.byref(params))
        self._pending.clear()

    def disable(self) -> None:
        self._call("llama_glass_disable")

    def reset(self) -> None:
        self._call("llama_glass_reset")
        self._forget_cached_prompt()

    def _forget_cached_prompt(self) -> None:
        # llama-cpp-python re-evaluates only the part of a prompt its KV cache lacks; after the statistics are
        # cleared, the whole next prompt must run through the graph again to be collected
        self.llm.reset()

    def finalize(self) -> None:
        self._call("llama_glass_finalize")

    def resolve_params(self, density: float | None = None, lam: float | None = None) -> dict:
        """The settings a plain Llama would use: the given file values (None: the GGUF's glass.* keys, else density
        0.5 and lambda 0.5 with a prior, 0 without, from libllama), under GLASS_GGUF_DENSITY/LAMBDA/MODE (read by
        llama-cpp-python's llama_cpp/glass_policy.py). "switch" is "off", "on" or None for GLASS_GGUF. A bad
        variable raises ValueError naming it, a refused value GlassError with the runtime's one-line reason."""
        from llama_cpp.glass_policy import GlassParams, settings_from_env

        env = settings_from_env()
        defaults = GlassParams()
        self._call("llama_glass_default_params", ctypes.byref(defaults), None)
        names = {v: k for k, v in MODES.items()}
        return {"density": env.get("density", defaults.density if density is None else density),
                "lambda": env.get("lambda", defaults.lambda_ if lam is None else lam),
                "mode": env.get("mode", names[defaults.mode]), "switch": env.get("switch")}

    def attach_prior_file(self, path) -> None:
        """The prior and glass.* settings of a GGUF (a sidecar, or a GLASS GGUF of this model) in place of the model's
        own, checked against the model by libllama (llama_glass_adapter_init); GlassError with its reason when it is
        refused. GLASS must be off. (A plain Llama attaches GLASS_GGUF_PRIOR or the sidecar beside the model itself.)"""
        from llama_cpp.glass_policy import attach_prior_file

        reason = attach_prior_file(self.llm.ctx, str(path))
        if reason is not None:
            raise GlassError(-1, f"GLASS: {reason}")

    def detach_prior_file(self) -> None:
        """Back to the model's own prior and settings."""
        self._call("llama_glass_set_adapter", None)

    def set_prompt_end(self, end: int) -> None:
        """Auto mode: positions below `end` are prompt (collected densely however they are batched), the rest is the
        answer. llama-cpp-python's patched Llama.generate declares it itself; callers of Llama.eval do it here."""
        self._call("llama_glass_set_prompt_end", int(end))

    def info(self):
        """Everything the runtime reports about this context, from one llama_glass_get_info call (a ctypes mirror of
        struct llama_glass_info, declared once in the patched llama-cpp-python)."""
        from llama_cpp.glass_policy import GlassInfo

        info = GlassInfo()
        self._call("llama_glass_get_info", ctypes.byref(info))
        return info

    @property
    def collected(self) -> int:
        """How many cached positions [0, n) the local statistic covers (the lifecycle rule, docs/runtime.md)."""
        return self.info().n_collected

    def reusable_prefix(self, n_past: int) -> int:
        """Of n_past cached positions, how many a client may keep so that the statistic still covers the cache."""
        return int(self.lib.llama_glass_reusable_prefix(self.ctx, int(n_past)))

    @property
    def state(self) -> str:
        return STATES[self.info().state]

    @property
    def params(self) -> dict:
        info = self.info()
        names = {v: k for k, v in MODES.items()}
        return {"density": info.density, "lambda": info.lambda_, "mode": names[info.mode]}

    def layer_info(self, layer: int) -> tuple[int, int]:
        """(n_ff, flags) of one layer; flags combine LAYER_SUPPORTED, LAYER_HAS_PRIOR, LAYER_SPARSE."""
        n_ff, flags = ctypes.c_int64(), ctypes.c_int32()
        self._call("llama_glass_layer_info", int(layer), ctypes.byref(n_ff), ctypes.byref(flags))
        return n_ff.value, flags.value

    def n_ff(self) -> list[int]:
        return [self.layer_info(il)[0] for il in range(self.n_layer)]

    def dense_layers(self) -> list[int]:
        """Layers GLASS cannot serve (biases, fused or MoE FFNs): they always run dense."""
        return [il for il in range(self.n_layer) if not self.layer_info(il)[1] & LAYER_SUPPORTED]

    def set_prior(self, layer: int, prior) -> None:
        import numpy as np

        arr = np.ascontiguousarray(prior, dtype=np.float32)
        if arr.ndim != 1:
            raise ValueError(f"prior of layer {layer} must be one-dimensional, got shape {arr.shape}")
        self._call("llama_glass_set_prior", int(layer), arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                   arr.shape[0])

    def set_priors(self, priors) -> None:
        """One prior per layer (None leaves a layer as it is); the count must equal the model's layer count."""
        priors = list(priors)
        if len(priors) != self.n_layer:
            raise ValueError(f"got priors for {len(priors)} layers, the model has {self.n_layer}")
        for il, prior in enumerate(priors):
            if prior is not None:
                self.set_prior(il, prior)

    def clear_priors(self) -> None:
        """No layer has a prior any more, the model file's own included, until set_prior(s): selections are then
        prompt-only (GRIFFIN) in every layer that collects, and the layer that never collects (the last) runs
        dense. Takes effect at the next selection."""
        self._call("llama_glass_clear_priors")

    @property
    def sparse_tokens(self) -> int:
        """Tokens decoded with the compacted weights since GLASS was enabled or its statistic last cleared (a
        prompt restart): the proof that GLASS did decode sparse, not only that it was asked to."""
        return int(self.info().n_sparse_tokens)

    def stats(self):
        """(sum_squares per layer, rows per layer): the local statistic as collected in the graph."""
        return self._per_layer_sums("llama_glass_get_stats")

    def _per_layer_sums(self, fn: str):
        """(float64 [n_ff] per layer, rows per layer) from one of the runtime's per-layer sum getters."""
        import numpy as np

        sums, rows = [], []
        for il in range(self.n_layer):
            n_ff = self.layer_info(il)[0]
            buf = np.zeros(n_ff, dtype=np.float64)
            n_rows = ctypes.c_int64()
            self._call(fn, il, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), n_ff, ctypes.byref(n_rows))
            sums.append(buf)
            rows.append(n_rows.value)
        return sums, rows

    def layer_bytes(self, layer: int) -> tuple[int, int]:
        """(dense, compacted) bytes of layer's FFN weights one decoded token reads, at the enabled density and with
        the type the runtime compacts the down projection to (equal for a layer that stays dense)."""
        dense, sparse = ctypes.c_int64(), ctypes.c_int64()
        self._call("llama_glass_layer_bytes", int(layer), ctypes.byref(dense), ctypes.byref(sparse))
        return dense.value, sparse.value

    def abs_sums(self):
        """(sum |h| per layer, rows per layer) over the collected rows, the last layer's output rows included:
        divided, the activation prior of the text the model read (glass-gguf prior on a GGUF)."""
        return self._per_layer_sums("llama_glass_get_abs_sums")

    def selected(self):
        """The kept neuron indices per layer (ascending), None for a layer that runs dense."""
        import numpy as np

        out = []
        for il in range(self.n_layer):
            n_ff = self.layer_info(il)[0]
            buf = np.zeros(n_ff, dtype=np.int32)
            n_sel = ctypes.c_int64()
            self._call("llama_glass_get_selected", il, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), n_ff,
                       ctypes.byref(n_sel))
            out.append(None if n_sel.value < 0 else buf[: n_sel.value].astype(np.int64))
        return out

    def set_schedule(self, warmup: int = 0, refresh: int = 0, min_change: float = 0.05) -> None:
        """How answers decode in auto mode: the first `warmup` generated tokens dense and collected before the
        first selection, then every `refresh`-th token (0: never) dense, collected, and the selection made again;
        a layer is compacted again only when more than `min_change` of its kept neurons change (docs/runtime.md,
        "Warm-up and refresh")."""
        self._call("llama_glass_set_schedule", int(warmup), int(refresh), float(min_change))

    def set_layer_scale(self, scale=None) -> None:
        """Per-layer density: layer i keeps the neurons of min(1, density * scale[i]) (method.layer_density); None
        or [] for the same density in every layer. An enabled session starts a new statistic."""
        import numpy as np

        self._set(layer_scale=np.ascontiguousarray([] if scale is None else scale, dtype=np.float32))

    def set_token_fraction(self, fraction: float = 1.0) -> None:
        """Two-level decoding (docs/two-level.md): each decoded token keeps this share of its layer's selection, the
        neurons with the largest |act(gate)|; 1 (the default) is single-level GLASS. An enabled session starts a new
        statistic."""
        self._set(token_fraction=float(fraction))

    def _set(self, **change) -> None:
        # enabled: a new statistic under the changed settings (refused: nothing changes); off: for the next enable
        if self.state == "off":
            self._pending.update(change)
        else:
            self._enable(**change)

    def token_fraction(self) -> float:
        return float(self._pending.get("token_fraction", self.info().token_fraction))

    def layer_scale(self) -> list[float]:
        """The per-layer density factors in use ([]: uniform); the model's glass.layer_scale by default."""
        if "layer_scale" in self._pending:
            return [float(x) for x in self._pending["layer_scale"]]
        buf = (ctypes.c_float * self.n_layer)()
        n = self._call("llama_glass_get_layer_scale", buf, self.n_layer)
        return [float(x) for x in buf[:n]]

    def schedule(self) -> dict:
        """The schedule and what it did for the current answer: selections made (steps), layers compacted again
        by refreshes, and the milliseconds those took."""
        info = self.info()
        return {"warmup": info.warmup, "refresh": info.refresh, "min_change": info.min_change, "steps": info.n_steps,
                "layers_recompacted": info.n_layers_recompacted, "refresh_ms": info.refresh_ms}

    def timings(self) -> dict:
        info = self.info()
        return {"collect_ms": info.collect_ms, "finalize_ms": info.finalize_ms}
