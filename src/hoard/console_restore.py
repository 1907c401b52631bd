"""Rendering of restores for the terminal: the plan, the summary line, JSON, thaw status."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, TextIO

from hoard.restore import TYPICAL_WAIT, RestoreResult, Step
from hoard.units import format_duration, format_size, format_time


def print_restore_plan(out: TextIO, steps: list[Step], thaw: str | None, dry_run: bool) -> None:
    """Dry run: every step. Real run: what matters before it starts (thaws, refusals)."""
    for st in steps:
        if dry_run or st.kind in ("thaw", "needs-thaw", "fail"):
            src = f"  <- {st.item.key}" if st.item else ""
            out.write(f"{st.kind:<10} {st.target}{src}  ({st.reason})\n")
    thawing = [st for st in steps if st.kind == "thaw" and st.item]
    if thawing:
        size = format_size(sum(st.item.size for st in thawing if st.item))
        out.write(
            f"thaw: {len(thawing)} objects ({size}) at {thaw} speed, typically ready in "
            f"{TYPICAL_WAIT.get(thaw or '', 'hours')}\n"
        )
    if dry_run:
        kinds = Counter(st.kind for st in steps)
        out.write(
            "plan: "
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + "; nothing was done (dry run)\n"
        )


def restore_summary(r: RestoreResult, thaw: str | None) -> str:
    rate = r.bytes / r.elapsed_s if r.elapsed_s > 0 else 0.0
    lines = []
    if r.pending:
        lines.append(
            f"{r.pending} objects are thawing; run the same command again in about "
            f"{TYPICAL_WAIT.get(thaw or 'standard', 'a few hours')} (or add --wait); "
            "`hoard restore --status` shows them"
        )
    if r.count("needs-thaw"):
        lines.append(
            f"{r.count('needs-thaw')} objects are in archive tiers: add "
            "--thaw bulk|standard|expedited to request them"
        )
    lines.append(
        f"selected={sum(1 for s in r.steps if s.item)} restored={r.restored} "
        f"skipped={r.skipped} kept={r.count('keep')} thaw_requested={r.thaw_requested} "
        f"pending={r.pending} failed={r.failed} bytes={format_size(r.bytes)} "
        f"elapsed={format_duration(r.elapsed_s)} rate={format_size(rate)}/s"
        + (f" job={r.job_id}" if r.job_id is not None else "")
    )
    return "\n".join(lines)


def restore_json(r: RestoreResult) -> str:
    return json.dumps(
        {
            "job": r.job_id,
            "outcome": r.outcome,
            "restored": r.restored,
            "bytes": r.bytes,
            "skipped": r.skipped,
            "kept": r.count("keep"),
            "failed": r.failed,
            "thaw_requested": r.thaw_requested,
            "pending": r.pending,
            "needs_thaw": r.count("needs-thaw"),
            "elapsed_s": round(r.elapsed_s, 3),
            "errors": r.errors,
            "stopped_by": r.stopped_by,
            "not_attempted": r.not_attempted,
            "steps": [
                {
                    "step": s.kind,
                    "target": s.target,
                    "key": s.item.key if s.item else None,
                    "reason": s.reason,
                }
                for s in r.steps
            ],
        },
        indent=2,
    )


def thaw_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no thaws recorded"
    out = []
    for t in rows:
        out.append(
            f"{t['state']:<8} {t['remote']} {t['key']}  ({t['speed']}, requested "
            f"{format_time(t['requested_ns'])}, readable until {format_time(t['expires_ns'])})"
        )
    return "\n".join(out)
