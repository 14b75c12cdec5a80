"""The GLASS GGUF schema (version 1): every key and tensor name lives here and nowhere else.

See docs/design.md (GGUF schema). A GLASS GGUF is a stock model plus one F32 tensor of n_ff scores per layer with a dense
gated FFN, and the glass.* keys below. A sidecar is a GGUF holding only those tensors and keys. The portable form
(`convert --portable`) stores the same scores as one F32 array key per layer instead, which stock loaders ignore.
"""
import re

GLASS_VERSION = 1

KEY_VERSION = "glass.version"                     # u32
KEY_PRIOR_KIND = "glass.prior.kind"               # "activation" | "impact"
KEY_PRIOR_SOURCE = "glass.prior.source"           # e.g. "self-generated:64x128" or a file digest
KEY_PRIOR_TOKENS = "glass.prior.tokens"           # u64: calibration tokens behind the prior
KEY_MODEL_FINGERPRINT = "glass.prior.model_fingerprint"  # the model the prior was computed for
KEY_DENSITY = "glass.density"                     # f32 default density
KEY_LAMBDA = "glass.lambda"                       # f32 default weight of the global rank
KEY_WARMUP = "glass.warmup"                       # u32 generated tokens decoded dense and collected first
KEY_REFRESH = "glass.refresh"                     # u32 period of the dense, collected refresh tokens (0: none)
KEY_LAYER_SCALE = "glass.layer_scale"             # f32 array, one per layer: per-layer density factors
MAX_LAYER_SCALE = 16.0                            # factors are in (0, MAX_LAYER_SCALE], as the runtime checks

PRIOR_KINDS = ("activation", "impact")

PRIOR_TENSOR = "blk.{layer}.ffn_glass_prior"


def prior_tensor_name(layer: int) -> str:
    return PRIOR_TENSOR.format(layer=layer)


# Where the scores are stored: tensors (the default) or metadata (the portable form, `convert --portable`)
KEY_PRIOR_FORM = "glass.prior.form"               # string, absent for the tensor form
FORM_TENSORS = "tensors"
FORM_METADATA = "metadata"
PRIOR_FORMS = (FORM_TENSORS, FORM_METADATA)
PRIOR_KEY = "glass.prior.blk.{layer}"             # array of f32 [n_ff]: the scores of layer i, metadata form


def prior_key_name(layer: int) -> str:
    return PRIOR_KEY.format(layer=layer)


PRIOR_KEY_RE = re.compile(r"glass\.prior\.blk\.(0|[1-9][0-9]*)")


# Written by `glass-gguf prior` and the tools around it (not read by the runtime).
KEY_PREFIX = "glass."
KEY_PRIOR_SHARD = "glass.prior.shard"             # "i/n" in a prior file computed with --shard i/n
PRIOR_FILE_TYPE = "glass-prior"                   # general.type of a prior file or sidecar
# float64 sums of the per-token contributions behind the scores, kept in prior files so shards merge exactly;
# `convert` does not copy them into a model
PRIOR_SUM_TENSOR = "blk.{layer}.ffn_glass_prior_sum"
SIDECAR_SUFFIX = ".glass-prior.gguf"              # model.gguf -> model.glass-prior.gguf


def prior_sum_tensor_name(layer: int) -> str:
    return PRIOR_SUM_TENSOR.format(layer=layer)


def is_glass_tensor(name: str) -> bool:
    """A prior or one of its companions (any blk.N.ffn_glass_* tensor)."""
    return name.startswith("blk.") and ".ffn_glass_" in name


# The only GLASS tensor names there are: blk.N.ffn_glass_prior and blk.N.ffn_glass_prior_sum (N without leading 0s)
GLASS_TENSOR_RE = re.compile(r"blk\.(0|[1-9][0-9]*)\.ffn_glass_prior(_sum)?")

# Every glass.* key of schema version 1 besides the per-layer PRIOR_KEYs
KEYS = (KEY_VERSION, KEY_PRIOR_KIND, KEY_PRIOR_SOURCE, KEY_PRIOR_TOKENS, KEY_MODEL_FINGERPRINT, KEY_DENSITY,
        KEY_LAMBDA, KEY_WARMUP, KEY_REFRESH, KEY_LAYER_SCALE, KEY_PRIOR_SHARD, KEY_PRIOR_FORM)
