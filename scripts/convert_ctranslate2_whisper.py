"""Convert a CTranslate2 (faster-whisper) Whisper model directory into a transformers checkpoint.

    python scripts/convert_ctranslate2_whisper.py CT2_DIR OUT_DIR

CT2_DIR holds model.bin, config.json, vocabulary.txt (or .json) and tokenizer.json, as faster-whisper
models do. OUT_DIR must not exist (or be empty); it appears only when the conversion succeeds, with
config.json, generation_config.json, model.safetensors (float32), the tokenizer files and
preprocessor_config.json. Exit status 2 with `error: ...` when the directory cannot be converted
exactly (quantised, truncated, not Whisper, unknown variables...). See src/pretrained/ctranslate2.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.pretrained.ctranslate2 import ConversionError, convert_ct2_whisper  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert a CTranslate2 (faster-whisper) Whisper model directory into a transformers checkpoint."
    )
    parser.add_argument("ct2_dir", metavar="CT2_DIR", help="CTranslate2 model directory (model.bin, config.json, ...)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="new transformers checkpoint directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        result = convert_ct2_whisper(args.ct2_dir, args.out_dir)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    d = result.dims
    kind = "multilingual" if result.multilingual else "English-only"
    print(
        f"wrote {result.out_dir}: {kind} Whisper, d_model {d.d_model}, {d.encoder_layers}+{d.decoder_layers} layers, "
        f"{d.encoder_attention_heads}/{d.decoder_attention_heads} heads, vocab {d.vocab_size}, {d.num_mel_bins} mels; "
        f"{result.n_variables} variables + {result.n_aliases} aliases stored as {'/'.join(result.stored_dtypes)}, "
        "written as float32"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
