"""`python -m src.summary data=... [overrides]`: usable examples per split and direction and skip counts by
reason. The last line printed is that summary as one JSON object."""

import json

import hydra

from src.config import RunSettings
from src.entry.cli import entry


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@entry
def main(run: RunSettings) -> None:
    from src.data.loading import build_source
    from src.data.summary import format_table, summarize

    summary = summarize(build_source(run.data))
    print(format_table(summary))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
