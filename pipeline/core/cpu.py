"""The CPU's features: which paths are fast here, and which run at all."""

from __future__ import annotations

from functools import cache
from pathlib import Path

# The flags the benchmarks record and the precisions check.
NOTABLE_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@cache
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((row for row in text.splitlines() if row.startswith("flags")), "")
    return frozenset(line.split(":", 1)[-1].split())


def notable_flags() -> str:
    present = [flag for flag in NOTABLE_FLAGS if flag in cpu_flags()]
    return ", ".join(present) or "none of " + ", ".join(NOTABLE_FLAGS)
