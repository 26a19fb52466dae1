"""The receiver side of webhooks as docs/events.md shows it: ``verify`` is the docs' own
snippet (read from the file), so the documented code is the code under test."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["docs_verify"]

_DOC = Path(__file__).resolve().parent.parent / "docs" / "events.md"


def docs_verify() -> Callable[[str, Mapping[str, str], bytes], bool]:
    """The ``verify`` function of the docs' receiver example."""
    text = _DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    [snippet] = [block for block in blocks if "def verify(" in block]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(_DOC), "exec"), namespace)
    verify: Callable[[str, Mapping[str, str], bytes], bool] = namespace["verify"]
    return verify
