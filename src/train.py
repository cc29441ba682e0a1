"""Train (and upcycle) a Whisper speech-translation model: `python -m src.train upcycle=spri data=covost2`."""

import hydra
from omegaconf import DictConfig

from src.utils.cli import entry


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@entry
def main(cfg: DictConfig) -> None:
    from src.pipelines.train import train

    train(cfg)


if __name__ == "__main__":
    main()
