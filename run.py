"""Entry point: composes the Hydra config and runs the pipeline.

python run.py                                    # the embedded default
python run.py -m precision=fp32,int8 batch_size=1,32   # a sweep, one MLflow parent run
"""

from __future__ import annotations

import gc
import warnings

from pipeline.quick_exit import QuickExit
from pipeline.tracking.run_process import RunProcess

if __name__ == "__main__":
    # First things: the exit handler that runs last is ours; a helper process imports MLflow
    # (~2 s) while Hydra composes and the job works; and start-up (imports, composing), which
    # allocates much and frees little, runs without the garbage collector (main() restarts it).
    quick_exit = QuickExit()
    tracking_helper = RunProcess.spawn()
    gc.disable()
else:
    quick_exit = tracking_helper = None

import hydra
from omegaconf import DictConfig

from pipeline.job import run_job

# conf/hydra/launcher/ray.yaml deliberately takes the place of the plugin's own `ray` launcher
# config (same name, our launcher class): Hydra warns about the name on every sweep.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")
# Paddle warns on import that it could not find ccache, which only matters for building C++ ops.
warnings.filterwarnings("ignore", message="No ccache found")


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | list[float] | None:
    gc.enable()
    return run_job(cfg, tracking_helper)


if __name__ == "__main__":
    try:
        main()
    finally:
        if tracking_helper is not None:
            tracking_helper.discard()
    quick_exit.arm()
