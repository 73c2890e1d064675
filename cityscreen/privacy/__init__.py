"""The release gate's rules: the only way from exact aggregates to publishable frames.

Public surface: `release(aggregate, privacy, published_ms=...) -> list[Frame]` and `build_manifest`.
"""

from cityscreen.privacy.gate import release
from cityscreen.privacy.manifest import build_manifest

__all__ = ["build_manifest", "release"]
