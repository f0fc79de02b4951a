"""Entry point: composes the Hydra config and runs the pipeline.

python run.py                                   # the embedded default
python run.py -m precision=fp32 batch_size=1,32 # a sweep
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from pipeline.config import validate
from pipeline.errors import PipelineError
from pipeline.runner import run_experiment
from pipeline.tracking import run_name


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        config = validate(cfg)
        metrics = run_experiment(
            config,
            Path(HydraConfig.get().runtime.output_dir),
            OmegaConf.to_yaml(cfg, resolve=True),
            run_name(list(HydraConfig.get().overrides.task)),
        )
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(
        f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
        f"latency {metrics['latency_ms']:.3f} ms/sample  ({metrics['n_samples']} samples)"
    )
    return float(metrics["accuracy"])


if __name__ == "__main__":
    main()
