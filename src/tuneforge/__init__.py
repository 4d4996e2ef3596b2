"""tuneforge: a self-hosted model tuning service."""

import logging

__version__ = "0.1.0"

# bitsandbytes (QLoRA) is imported by peft whenever it is installed, and on CPUs with AVX-512
# bf16 it warns that an optional kernel from the Hugging Face Hub could not be loaded. Its CPU
# backend works without that kernel, and nothing is fetched at run time: the warning is noise on
# every command's stderr.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
