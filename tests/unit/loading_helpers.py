"""Writing test input files, for the loading tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def write_json(path: Path, data: Any) -> Path:
    return write(path, json.dumps(data))
