"""The GLASS GGUF schema (version 1): every key and tensor name lives here and nowhere else.

See docs/design.md (GGUF schema). A GLASS GGUF is a stock model plus one F32 tensor of n_ff scores per layer with a dense
gated FFN, and the glass.* keys below. A sidecar is a GGUF holding only those tensors and keys.
"""

GLASS_VERSION = 1

KEY_VERSION = "glass.version"                     # u32
KEY_PRIOR_KIND = "glass.prior.kind"               # "activation" | "impact"
KEY_PRIOR_SOURCE = "glass.prior.source"           # e.g. "self-generated:64x128" or a file digest
KEY_PRIOR_TOKENS = "glass.prior.tokens"           # u64: calibration tokens behind the prior
KEY_MODEL_FINGERPRINT = "glass.prior.model_fingerprint"  # the model the prior was computed for
KEY_DENSITY = "glass.density"                     # f32 default density
KEY_LAMBDA = "glass.lambda"                       # f32 default weight of the global rank

PRIOR_KINDS = ("activation", "impact")

PRIOR_TENSOR = "blk.{layer}.ffn_glass_prior"


def prior_tensor_name(layer: int) -> str:
    return PRIOR_TENSOR.format(layer=layer)


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
