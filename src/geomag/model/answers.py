"""The model's answer format: the tokens it writes and the answers it is trained to give.

Why here: the predictor reads these tokens out of generated text and the data loaders write them
into training targets; both sides must agree, and the model layer is the one both may import.
"""

from __future__ import annotations

import re

SEG_TOKEN, P_OPEN, P_CLOSE = "[SEG]", "<p>", "</p>"
NEW_TOKENS = (SEG_TOKEN, P_OPEN, P_CLOSE)
# the referring-segmentation answer: teacher-forced by the mask saliency and the candidate ranking
REFSEG_ANSWER = "Sure, it is [SEG]."
_PHRASE = re.compile(r"<p>\s*(.*?)\s*</p>\s*\[SEG\]")


def gcg_phrases(text: str) -> list[str]:
    """Phrases of a GeoPixelD-style answer, one per `<p> phrase </p> [SEG]`, in order."""
    return _PHRASE.findall(text)


_PHRASE_OR_SEG = re.compile(r"<p>\s*(.*?)\s*</p>|\[SEG\]", re.S)


def seg_phrases(text: str) -> list[str]:
    """The phrase of each [SEG] of an answer, in order: the `<p> phrase </p>` right before its run of
    [SEG] (only whitespace between), "" for a [SEG] without one ("Sure, it is [SEG].")."""
    phrases: list[str] = []
    current, end = "", 0
    for match in _PHRASE_OR_SEG.finditer(text):
        if text[end : match.start()].strip():  # words between: what came before names nothing here
            current = ""
        if match.group(0) == SEG_TOKEN:
            phrases.append(current)
        else:
            current = match.group(1)
        end = match.end()
    return phrases
