"""Decode and score a trained model per direction: `python -m src.evaluate run_dir=DIR`
(or `checkpoint=DIR` with data overrides; `rescore=true` rescoring saved hypotheses only)."""

import hydra
from omegaconf import DictConfig

from src.utils.cli import entry


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@entry
def main(cfg: DictConfig) -> None:
    from src.evaluation.results import summary
    from src.pipelines.evaluate import evaluate

    tables = evaluate(cfg)
    for split, table in tables.items():
        print(f"{split}: {summary(table[-1])}")  # the average row


if __name__ == "__main__":
    main()
