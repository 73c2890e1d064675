"""The release gate's rules: the only way from exact aggregates to publishable frames.

Public surface: `release(aggregate, privacy, published_ms=...) -> list[Frame]`, `build_manifest` and
`manifest_for`.
"""

from cityscreen.privacy.gate import release
from cityscreen.privacy.manifest import build_manifest, manifest_for

__all__ = ["build_manifest", "manifest_for", "release"]
