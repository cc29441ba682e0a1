"""Pretrain the dense toy Whisper on the toy English ASR split: `python -m src.pretrain`.

`python -m src.train` builds it on first use and reuses the cache; this entry rebuilds it
(`+rebuild=false`: reuse the cached one, as `make demo` does).
"""

import hydra

from src.config import RunSettings
from src.entry.cli import entry
from src.utils.errors import UserError


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@entry
def main(run: RunSettings) -> None:
    from src.pipelines.pretrain import ensure_toy_model

    if run.model.toy is None:
        raise UserError("src.pretrain pretrains the toy model: use model=whisper_toy (the default for data=toy)")
    path = ensure_toy_model(run.model.toy, run.pretrain, run.data, run.paths.cache_dir, run.progress,
                            force=run.rebuild)
    print(f"toy model: {path}")


if __name__ == "__main__":
    main()
