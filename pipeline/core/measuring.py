"""One thing at a time where a job times its model: a timed section (pipeline.stages.infer) and
this process's own background work (a sweep's thread making job folders into MLflow runs) take
turns. With the basic launcher a sweep's jobs run in the sweep's own process, and a run logged
while the next job timed its model would slow that job's measured latency."""

from __future__ import annotations

import threading

MEASUREMENT = threading.Lock()
