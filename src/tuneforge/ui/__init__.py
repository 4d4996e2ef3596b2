"""The web dashboard's templates, static files and drawing helpers (routes: tuneforge.api.ui)."""

from pathlib import Path

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
