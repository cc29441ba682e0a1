"""Pretrain the dense toy Whisper on the toy English ASR split: `python -m src.pretrain`.

`python -m src.train` builds it on first use and reuses the cache; this entry rebuilds it
(`+rebuild=false`: reuse the cached one, as `make demo` does).
"""

import hydra

from src.config import RunSettings
from src.entry.cli import entry


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@entry
def main(run: RunSettings) -> None:
    from src.pipelines.pretrain import ensure_toy_model

    path = ensure_toy_model(run.model, run.cfg.data, run.paths.cache_dir, run.progress,
                            force=bool(run.cfg.get("rebuild", True)))
    print(f"toy model: {path}")


if __name__ == "__main__":
    main()
