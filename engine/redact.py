"""Cuts a secret (the API key) out of text in every form it can take: raw, URL-encoded,
percent-encoded byte by byte, or any piece of it at least MIN_PIECE characters long."""

from urllib.parse import quote, quote_plus

MIN_PIECE = 8  # shorter pieces of a key say too little to hide, and match innocent text
MASK = "***"


def _encodings(text: str) -> list[str]:
    every_byte = "".join(f"%{b:02X}" for b in text.encode())
    return [text, quote(text, safe=""), quote_plus(text), every_byte, every_byte.lower()]


class Redactor:
    """`redactor(text)` is `text` with every occurrence of a MIN_PIECE-character window of
    the secret (in each of its encodings) masked; overlapping and adjacent hits merge, so a
    longer piece is masked whole. A secret shorter than that is masked whole; no secret:
    text is returned as is."""

    def __init__(self, secret: str | None) -> None:
        pieces: set[str] = set()
        if secret:
            size = min(MIN_PIECE, len(secret))
            for start in range(len(secret) - size + 1):
                pieces.update(_encodings(secret[start : start + size]))
        self.pieces = sorted(pieces)

    def __call__(self, text: str) -> str:
        if not self.pieces or not text:
            return text
        spans: list[tuple[int, int]] = []
        for piece in self.pieces:
            at = text.find(piece)
            while at != -1:
                spans.append((at, at + len(piece)))
                at = text.find(piece, at + 1)
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        done = 0
        end = -1
        for start, stop in spans:
            if start > end:  # a new masked region begins
                out.append(text[done:start])
                out.append(MASK)
                end = stop
            else:
                end = max(end, stop)
            done = end
        out.append(text[done:])
        return "".join(out)
