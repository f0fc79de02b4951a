"""Entry point: composes the Hydra config and runs one job (or, with -m, a sweep of them).

python run.py                                          # the embedded default
python run.py -m precision=fp32,int8 batch_size=1,32   # a sweep, one MLflow parent run
"""

from __future__ import annotations

import warnings

import hydra
from omegaconf import DictConfig

from pipeline.cli import interrupts_end_cleanly, quick_exit, readable_errors
from pipeline.job import run_job

# Paddle warns on import that it could not find ccache, which only matters for building C++ ops.
warnings.filterwarnings("ignore", message="No ccache found")


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | list[float] | None:
    return run_job(cfg)


if __name__ == "__main__":
    with quick_exit(), interrupts_end_cleanly(), readable_errors():
        main()
