"""Where and with what a job ran: enough to tell two results apart (recorded in every job folder)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from pipeline import PROJECT_ROOT
from pipeline.core.cache import installed_version
from pipeline.core.cpu import notable_flags


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(root: Path = PROJECT_ROOT) -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        )
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def onnxruntime_version() -> str:
    """The CPU and GPU builds install the same module under two distribution names."""
    gpu_build = installed_version("onnxruntime-gpu")
    return gpu_build if gpu_build != "not installed" else installed_version("onnxruntime")


def environment_tags() -> dict[str, str]:
    tags = {
        "git_commit": git_commit(),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpu_flags": notable_flags(),
        "cpu_count": str(os.cpu_count()),
        "onnxruntime": onnxruntime_version(),
        "paddle": installed_version("paddlepaddle"),
        "paddle2onnx": installed_version("paddle2onnx"),
        "python": platform.python_version(),
    }
    # Only where the job imported it: importing ONNX Runtime for a tag costs an OpenVINO job ~0.2 s.
    if "onnxruntime" in sys.modules:
        tags["onnxruntime_providers"] = ",".join(sys.modules["onnxruntime"].get_available_providers())
    return tags
