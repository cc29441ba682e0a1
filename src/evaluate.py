"""Decode and score a trained model per direction: `python -m src.evaluate run_dir=DIR`
(or `checkpoint=DIR` with data overrides; `rescore=true` rescoring saved hypotheses only)."""

import hydra
from omegaconf import DictConfig

from src.utils.cli import entry


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@entry
def main(cfg: DictConfig) -> None:
    from src.training.run import evaluate

    tables = evaluate(cfg)
    for split, table in tables.items():
        avg = table[-1]
        comet = "n/a" if avg["comet"] is None else f"{avg['comet']:.2f}"
        print(f"{split}: BLEU {avg['bleu']:.2f}  chrF {avg['chrf']:.2f}  COMET {comet}  ({avg['segments']} segments)")


if __name__ == "__main__":
    main()
