"""The research harness: throughput phases, the scheduler simulation, recordings, scale and
spec-decoding studies, overhead profilers. It runs from a checkout's root and is not installed
(`python -m bench --help`); the package never imports it. A user's own throughput check is
`mga-spark bench` (mga_spark/tools/throughput.py)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout: `import bench` resolves from here


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a `python -m bench.<module>` child: the checkout first on PYTHONPATH,
    so the child imports this harness whatever its working directory."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
