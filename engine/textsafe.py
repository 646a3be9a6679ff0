"""Make outside text safe: encodable for files, visible (never executed) on a terminal.

Text from outside (model replies, server error bodies, file and directory names) may hold
lone surrogates, which no UTF-8 file can store, and control characters, which a terminal
obeys: ESC starts CSI/OSC sequences (screen clear, OSC 52 clipboard writes, OSC 8 links),
bidi overrides reorder what is shown and zero-width characters hide text."""

import re

# C0 controls except tab and newline, DEL, and C1 controls (0x9b is a one-byte CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# The same with tab and newline: for text that must stay on one line.
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Bidi embeddings/overrides U+202A-U+202E, isolates U+2066-U+2069, zero-width and
# direction marks U+200B-U+200F, word joiner U+2060, BOM U+FEFF.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so it encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def visible(text: str, *, one_line: bool = False) -> str:
    """`text` safe to show on a terminal: controls as `\\x1b`, invisible and bidi
    characters as `<U+202E>`, lone surrogates as U+FFFD. With `one_line`, tab and newline
    are escaped too."""
    text = encodable(text)
    control = _CONTROL_LINE if one_line else _CONTROL
    text = control.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return _INVISIBLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)
