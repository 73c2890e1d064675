"""First cut of the gate: per-value person threshold only (issue 5 replaces it with the full gate)."""

from __future__ import annotations

from typing import Any

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import FRAME_VERSION, Frame, FramePrivacy, ReleasedFlow
from cityscreen.settings import PrivacySettings


def release(aggregate: WindowAggregate, privacy: PrivacySettings, *, published_ms: int) -> list[Frame]:
    k = privacy.min_persons
    fp = FramePrivacy(min_persons=k, dp_enabled=False, epsilon=0.0)
    flows = [
        ReleasedFlow(f.origin, f.dest, f.kind, float(f.persons) if f.persons >= k else None)
        for f in aggregate.flows
    ]
    frames = []
    for res, cells in sorted(aggregate.cells.items(), reverse=True):
        released = {
            cell: {key: (m.value if m.persons >= k else None) for key, m in stats.items()}
            for cell, stats in cells.items()
        }
        frames.append(
            Frame(
                v=FRAME_VERSION,
                window_start_ms=aggregate.window_start_ms,
                window_s=aggregate.window_s,
                res=res,
                published_ms=published_ms,
                privacy=fp,
                cells=released,
                flows=flows,
            )
        )
    return frames


def build_manifest(privacy: PrivacySettings, *, window_s: int, resolutions: list[int]) -> dict[str, Any]:
    return {
        "privacy_unit": "person",
        "min_persons": privacy.min_persons,
        "window_s": window_s,
        "resolutions": resolutions,
        "dp_enabled": privacy.dp_enabled,
    }
