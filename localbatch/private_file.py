"""Files only their owner may read (mode 0600): credentials and the state next to them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_private_json"]


def write_private_json(path: Path, value: Mapping[str, Any]) -> None:
    """Write ``value`` as JSON readable by its owner only, all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(value, out, indent=2)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
