"""Machine description written beside every benchmark result."""

from __future__ import annotations

import os
import platform
from typing import Any

from cgforge.provenance import git_revision, package_versions


def describe_machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "versions": package_versions(),
        "git": git_revision(),
    }
