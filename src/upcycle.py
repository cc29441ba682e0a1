"""Convert a dense Whisper checkpoint into an MoE checkpoint:
`python -m src.upcycle upcycle=spri model.name_or_path=DIR_OR_HUB_NAME out=DIR`.

Writes the HF-style checkpoint (safetensors + config recording the MoE and upcycling settings) and
DIR/upcycling_report.json, calibrating on `upcycle.calibration_examples` training examples of the configured data.
"""

import hydra

from src.config import RunSettings
from src.entry.cli import entry


@hydra.main(version_base="1.3", config_path="../conf", config_name="upcycle")
@entry
def main(run: RunSettings) -> None:
    from src.pipelines.upcycle import upcycle_checkpoint

    report = upcycle_checkpoint(run)
    print(f"{report.strategy}: {len(report.layers)} MoE layers, {report.total_parameters:,} total / "
          f"{report.active_parameters:,} active parameters -> {run.out}")


if __name__ == "__main__":
    main()
