"""What sits above the pipelines: the Hydra entry wrapper (validation, status.json, one-line errors), the Hydra
callbacks, and the demo's and study's phase timing. Nothing below imports it."""
