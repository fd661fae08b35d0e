"""RSVQA-style questions from exact object counts: presence, counting and comparison.

The questions are asked only where the answer is known: `counts` must be exhaustive for the classes
it names (NWPU VHR-10 annotates all ten of its classes in every image; a copy-paste composite knows
what it pasted; an AID scene class rules some objects out: `geomag.data.scene_objects`). The wording
follows RSVQA's and GeoScenes' (`geomag.data.scenes.vqa`), with the "in this image" form of the
issue's examples; `type` is RSVQA's question type, which the metrics score by.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TypedDict


class Question(TypedDict):
    question: str
    answer: str
    type: str  # presence | count | comp


def presence_question(name: str, plural: str, present: bool, rng: random.Random) -> Question:
    form = rng.randrange(4)
    text = (
        f"Is there a {name} in this image?",
        f"Are there {plural} in this image?",
        f"Is a {name} present?",
        f"Are there any {plural}?",
    )[form]
    return {"question": text, "answer": "yes" if present else "no", "type": "presence"}


def count_question(plural: str, count: int, rng: random.Random) -> Question:
    text = f"How many {plural} are there?" if rng.random() < 0.7 else f"What is the number of {plural}?"
    return {"question": text, "answer": str(count), "type": "count"}


def comparison_question(a: str, b: str, na: int, nb: int, rng: random.Random) -> Question:
    """a, b: plural names; na, nb: their counts."""
    form = rng.randrange(3)
    if form == 0:
        return {
            "question": f"Are there more {a} than {b}?",
            "answer": "yes" if na > nb else "no",
            "type": "comp",
        }
    if form == 1:
        return {
            "question": f"Are there fewer {a} than {b}?",
            "answer": "yes" if na < nb else "no",
            "type": "comp",
        }
    return {
        "question": f"Is the number of {a} equal to the number of {b}?",
        "answer": "yes" if na == nb else "no",
        "type": "comp",
    }


def count_questions(
    counts: Mapping[str, int],
    plural: Callable[[str], str],
    rng: random.Random,
    presence: int = 4,
    comparisons: int = 1,
    max_count: int = 30,
) -> list[Question]:
    """Questions about one image whose `counts` are exact for every class they name: up to `presence`
    presence questions (as many about present classes as about absent ones), a count
    question per present class with at most `max_count` objects (beyond it a person's count is not
    exact either) plus one about an absent class, and `comparisons` comparisons involving a present
    class."""
    present = sorted(c for c, n in counts.items() if n > 0)
    absent = sorted(c for c, n in counts.items() if n == 0)
    rng.shuffle(present)
    rng.shuffle(absent)
    half = min(presence // 2, len(present), len(absent))  # as many yes as no: no answer bias
    out = [presence_question(c, plural(c), counts[c] > 0, rng) for c in present[:half] + absent[:half]]
    out += [count_question(plural(c), counts[c], rng) for c in present if counts[c] <= max_count]
    if absent:
        out.append(count_question(plural(absent[0]), 0, rng))
    pairs = [(a, b) for a in present for b in counts if a != b]
    for a, b in rng.sample(pairs, min(comparisons, len(pairs))):
        out.append(comparison_question(plural(a), plural(b), counts[a], counts[b], rng))
    return out
