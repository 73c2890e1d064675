"""Package-data templates of the local stack (pom, broker and log4j properties) and their rendering."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

_FIELD = re.compile(r"\{\{(\w+)\}\}")


def template_text(name: str) -> str:
    return resources.files("services.stack").joinpath(name).read_text(encoding="utf-8")


def render(text: str, values: dict[str, object]) -> str:
    """Fill every `{{name}}`; a field without a value is a bug, so it raises instead of leaving a hole."""
    missing = sorted({m for m in _FIELD.findall(text) if m not in values})
    if missing:
        raise KeyError(f"template fields without a value: {', '.join(missing)}")
    return _FIELD.sub(lambda m: str(values[m.group(1)]), text)


def properties_value(path: Path) -> str:
    """A path as a .properties value: backslashes and colons would otherwise be escapes."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


def parse_properties(text: str) -> dict[str, str]:
    """Plain `key=value` lines (enough for the files rendered here; used to check them)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip()
    return out
