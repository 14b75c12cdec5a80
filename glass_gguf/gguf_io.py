"""Compatibility only: the names glass_llama.py and tests/test_runtime.py still import from here.

The code lives in gguf_reader, fingerprint, prior_file and glass_file; import from those. This module goes away
once nothing imports it.
"""
from .errors import GlassFormatError, PriorMismatch, UnsupportedModel  # noqa: F401
from .fingerprint import gguf_model_info  # noqa: F401
from .glass_file import embed_prior, write_sidecar  # noqa: F401
from .prior_file import Prior, read_prior, validate_prior, write_prior  # noqa: F401
