"""Decode and score a trained model per direction: `python -m src.evaluate run_dir=DIR`
(or `checkpoint=DIR` with data overrides; `rescore=true` rescoring saved hypotheses only)."""

import hydra

from src.config import RunSettings
from src.entry.cli import entry


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@entry
def main(run: RunSettings) -> None:
    from src.evaluation.results import summary
    from src.pipelines.evaluate import evaluate

    tables = evaluate(run)
    for split, table in tables.items():
        print(f"{split}: {summary(table[-1])}")  # the average row


if __name__ == "__main__":
    main()
