"""tuneforge: a self-hosted model tuning service."""

__version__ = "0.1.0"
