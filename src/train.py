"""Train (and upcycle) a Whisper speech-translation model: `python -m src.train upcycle=spri data=covost2`."""

import hydra

from src.config import RunSettings
from src.entry.cli import entry


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@entry
def main(run: RunSettings) -> None:
    from src.pipelines.train import train

    train(run)


if __name__ == "__main__":
    main()
