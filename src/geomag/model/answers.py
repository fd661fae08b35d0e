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
