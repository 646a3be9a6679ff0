"""Cuts a secret (the API key) out of text in every form it can take: raw, URL-encoded,
percent-encoded byte by byte, or any piece of it at least MIN_PIECE characters long."""

import re
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
        # A quick test that a text holds no piece (nearly every reply): a piece is made only
        # of the pieces' characters, so it lies in a run of them at least as long as the
        # shortest piece, and it starts with one of the pieces' openings. Runs are found by
        # one regex scan; a text that passes the test is masked by the full search.
        self._shortest = min(map(len, pieces), default=0)
        self._openings = {piece[: self._shortest] for piece in pieces}
        alphabet = re.escape("".join(sorted(set("".join(pieces)))))
        self._runs = re.compile(f"[{alphabet}]{{{self._shortest},}}") if pieces else None

    def may_hold_a_piece(self, text: str) -> bool:
        if self._runs is None:
            return False
        size, openings = self._shortest, self._openings
        return any(
            run[i : i + size] in openings for run in self._runs.findall(text) for i in range(len(run) - size + 1)
        )

    def __call__(self, text: str) -> str:
        if not text or not self.may_hold_a_piece(text):
            return text
        return self.mask(text)

    def mask(self, text: str) -> str:
        """Every piece found by searching for each one in turn."""
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
