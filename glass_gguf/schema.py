"""The GLASS GGUF schema (version 1): every key and tensor name lives here and nowhere else.

See DESIGN.md section 4. A GLASS GGUF is a stock model plus one F32 tensor of n_ff scores per layer with a dense
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


def is_prior_tensor(name: str) -> bool:
    return name.startswith("blk.") and name.endswith(".ffn_glass_prior")
