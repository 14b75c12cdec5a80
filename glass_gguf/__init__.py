"""glass-gguf: GLASS FFN sparsification for llama.cpp GGUF models."""

__version__ = "0.1.0"
