"""An encoder-side CTC auxiliary loss (a trainer extension), used by the toy model's pretraining."""

from __future__ import annotations

import torch

from src.data.text import PROMPT_TASK_POS
from src.models.backbone import encoder_lengths
from src.utils.extension import TrainerExtension


class CTCAuxLoss(torch.nn.Module, TrainerExtension):
    """Encoder-side CTC over the text tokens, for pretraining only (hybrid CTC/attention).

    A small model trained from scratch learns the audio-text alignment far sooner with it; the head
    is dropped afterwards, so the saved model is a plain Whisper. Only transcription rows (task token
    ``<|transcribe|>`` in the prompt) count: a translation is not monotonic in the audio, and CTC on
    it kept the encoder's CTC loss stuck near 2.4 per token.
    """

    def __init__(self, d_model: int, vocab_size: int, eot_id: int, transcribe_id: int, weight: float) -> None:
        super().__init__()
        self.head = torch.nn.Linear(d_model, vocab_size + 1)  # last class = blank
        self.blank, self.eot_id, self.transcribe_id, self.weight = vocab_size, eot_id, transcribe_id, weight

    def loss(self, model, batch: dict, out, routing: dict) -> dict[str, torch.Tensor]:
        return self(model, batch, out)

    def forward(self, model, batch: dict, out) -> dict[str, torch.Tensor]:
        enc = out.encoder_last_hidden_state
        rows = (batch["decoder_input_ids"][:, PROMPT_TASK_POS] == self.transcribe_id).to(enc.device)
        if not bool(rows.any()):
            return {"ctc": enc.sum() * 0.0}
        log_probs = self.head(enc[rows]).float().log_softmax(-1).transpose(0, 1)  # (T, B, C)
        labels = batch["labels"].to(enc.device)[rows]
        keep = (labels >= 0) & (labels != self.eot_id)
        targets = labels[keep]
        target_lengths = keep.sum(1)
        lengths = batch["feature_lengths"].to(enc.device)[rows]
        input_lengths = torch.clamp(encoder_lengths(lengths), max=enc.shape[1])
        loss = torch.nn.functional.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=self.blank,
                                            zero_infinity=True)
        return {"ctc": self.weight * loss}
