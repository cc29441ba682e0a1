"""The CoVoST2 En->X directions and their Whisper language tokens."""

from __future__ import annotations

from src.utils.errors import UserError

# Order as in the CoVoST2 paper's En->X table.
COVOST2_EN_XX: tuple[str, ...] = (
    "de", "ca", "zh-CN", "fa", "et", "mn", "tr", "ar", "sv-SE", "lv", "sl", "ta", "ja", "id", "cy",
)

# CoVoST2 code -> Whisper language code (the token is <|xx|>).
_WHISPER_CODE = {"zh-CN": "zh", "sv-SE": "sv"}

# Languages scored with character-level BLEU by default (CoVoST2 convention).
CHAR_LEVEL = frozenset({"zh-CN", "ja"})


def whisper_code(code: str) -> str:
    """Whisper language code for a CoVoST2 code ("zh-CN" -> "zh", "en" -> "en")."""
    return _WHISPER_CODE.get(code, code)


def language_token(code: str) -> str:
    return f"<|{whisper_code(code)}|>"


def check_directions(directions: list[str] | tuple[str, ...], source: str = "data.directions") -> list[str]:
    """Validate direction codes; the error names the bad code and the valid ones."""
    out = []
    for d in directions:
        d = str(d)
        if d.startswith("en_"):
            d = d[3:]
        if d not in COVOST2_EN_XX:
            raise UserError(
                f"{source}: unknown CoVoST2 direction '{d}'. Valid En->X codes: {', '.join(COVOST2_EN_XX)}"
            )
        out.append(d)
    if len(set(out)) != len(out):
        raise UserError(f"{source}: duplicate directions in {out}")
    return out
