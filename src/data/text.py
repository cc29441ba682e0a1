"""Text side: Whisper decoder prompts, label encoding, and the toy model's own tokenizer."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transformers import PreTrainedTokenizerBase, WhisperTokenizerFast

from src.data.config import TASKS
from src.data.languages import COVOST2_EN_XX, language_token
from src.utils.errors import UserError

SOT = "<|startoftranscript|>"
EOT = "<|endoftext|>"
NO_TIMESTAMPS = "<|notimestamps|>"
TASK_TOKENS = {task: f"<|{task}|>" for task in TASKS}
IGNORE_INDEX = -100

# Whisper's special tokens that the toy tokenizer reproduces (language tokens: English + the 15 targets).
TOY_SPECIAL_TOKENS = [
    SOT,
    *[language_token(c) for c in ("en", *COVOST2_EN_XX)],
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nospeech|>",
    NO_TIMESTAMPS,
]


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    idx = tokenizer.convert_tokens_to_ids(token)
    if idx is None or idx == tokenizer.unk_token_id and token != tokenizer.unk_token:
        raise UserError(f"tokenizer has no token {token}: is it a Whisper tokenizer?")
    return int(idx)


# transformers' OpenAI converter: a Whisper vocabulary of 51864 tokens (GPT-2's BPE plus Whisper's specials) is
# English-only (*.en checkpoints); multilingual ones have 51865 (v1, v2) or 51866 (v3).
ENGLISH_ONLY_VOCAB = 51864


def is_english_only(tokenizer: PreTrainedTokenizerBase) -> bool:
    """A *.en checkpoint's tokenizer: its models were trained on `<|startoftranscript|><|notimestamps|>` alone."""
    return len(tokenizer) == ENGLISH_ONLY_VOCAB


# Positions in a multilingual prompt (prompt_ids): <|startoftranscript|> <|xx|> <|task|> <|notimestamps|>.
PROMPT_LANG_POS = 1
PROMPT_TASK_POS = 2


def prompt_ids(tokenizer: PreTrainedTokenizerBase, tgt_lang: str, task: str = "translate") -> list[int]:
    """The forced decoder prompt, derived from the tokenizer: `<|startoftranscript|><|xx|><|task|><|notimestamps|>`
    (xx the target's Whisper code), or `<|startoftranscript|><|notimestamps|>` for an English-only checkpoint."""
    if task not in TASK_TOKENS:
        raise UserError(f"task must be one of {sorted(TASK_TOKENS)}, got '{task}'")
    if is_english_only(tokenizer):
        if task != "transcribe" or tgt_lang != "en":
            raise UserError(f"the checkpoint is English-only (*.en): it has no language or task tokens in its "
                             f"prompt and cannot {task} into '{tgt_lang}'; use a multilingual checkpoint, or "
                             "eval.task=transcribe")
        return [token_id(tokenizer, t) for t in (SOT, NO_TIMESTAMPS)]
    return [token_id(tokenizer, t) for t in (SOT, language_token(tgt_lang), TASK_TOKENS[task], NO_TIMESTAMPS)]


def encode_target(
    tokenizer: PreTrainedTokenizerBase, text: str, tgt_lang: str, task: str, max_tokens: int | None = None
) -> tuple[list[int], list[int]]:
    """Decoder inputs and labels for one example.

    The sequence is prompt + text + <|endoftext|>; inputs drop the last token, labels drop the first,
    and the forced prompt positions are masked with -100 so the loss is on the text and the end token.
    """
    prompt = prompt_ids(tokenizer, tgt_lang, task)
    text_ids = tokenizer.encode(" " + text.strip(), add_special_tokens=False)
    if max_tokens is not None:
        text_ids = text_ids[: max(0, max_tokens - len(prompt) - 1)]
    seq = prompt + text_ids + [token_id(tokenizer, EOT)]
    inputs = seq[:-1]
    labels = [IGNORE_INDEX] * (len(prompt) - 1) + seq[len(prompt) :]
    return inputs, labels


def train_toy_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 2000) -> WhisperTokenizerFast:
    """Byte-level BPE trained on the toy text, wrapped as a Whisper tokenizer with Whisper's specials."""
    from tokenizers import ByteLevelBPETokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(
        (" " + t.strip() for t in texts), vocab_size=vocab_size, min_frequency=2,
        special_tokens=[EOT], show_progress=False,
    )
    bpe.save_model(str(out_dir))
    tok = WhisperTokenizerFast(
        vocab_file=str(out_dir / "vocab.json"), merges_file=str(out_dir / "merges.txt"),
        unk_token=EOT, bos_token=EOT, eos_token=EOT, pad_token=EOT,
    )
    tok.add_special_tokens({"additional_special_tokens": TOY_SPECIAL_TOKENS})
    tok.save_pretrained(str(out_dir))
    return tok
