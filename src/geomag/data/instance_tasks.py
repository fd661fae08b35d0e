"""GeoMag's tasks from a real image's instances, in the benchmarks' own prompt and answer formats.

- refseg (RRSIS-D): REFSEG_PROMPT with an expression of geomag.data.refexpr, REFSEG_ANSWER, one mask.
- vqa (RSVQA): presence / count / comp questions, `meta["type"]` as RSVQA names them, exact answers.
  Only classes whose count is known are asked about: the present ones (annotated) and the image's
  `absent` classes; presence is balanced per image (as many "no" as "yes" where enough are known).
  Counts are asked up to a cap (COUNT_CAP: RSVQA-LR's first bin; beyond it an exact count is neither
  what a person would check nor what the annotation reliably gives).
- roc (DIOR-RSVG style box classification): ROC_PROMPT with the box in percent -> the class name.
- gcg (GeoPixelD): GCG_PROMPT -> a description with `<p> phrase </p> [SEG]`, one mask per [SEG].

This is the ONE builder of these tasks: NWPU VHR-10, iSAID, DOTA, the composites and GeoScenes all
reduce to `InstanceImage`s and are asked through these functions (`instance_samples` for any subset
of the tasks; composites and GeoScenes keep their colour-aware referring grammar for their own
benchmark files, and GeoScenes adds its land-cover and rural/urban questions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geomag.data.instances import InstanceImage, article, plural, union_spec
from geomag.data.prompts import GCG_PROMPT, REFSEG_PROMPT, ROC_PROMPT, VQA_PROMPT, box_text
from geomag.data.refexpr import MIN_AREA, class_expression, referring_expressions
from geomag.data.samples import Sample
from geomag.data.scenes.referring import CELLS, cell_of
from geomag.model.answers import REFSEG_ANSWER

COUNT_CAP = 10
Question = dict[str, str]


def _id(img: InstanceImage, task: str, k: int) -> str:
    return f"{img.source}/{img.stem}/{task}{k}" if img.source else f"{img.stem}/{task}{k}"


# ------------------------------------------------------------------------------------------------
def refseg_samples(
    img: InstanceImage, rng: np.random.Generator, max_refs: int = 10, with_all: bool = False
) -> list[Sample]:
    """Referring segmentation: one sample per unique expression; with `with_all`, also one
    "all the <class>" sample (union mask) for a class with 2+ instances."""
    out = []
    for k, ref in enumerate(referring_expressions(img.instances, img.size, rng, max_refs)):
        o = img.instances[ref.index]
        out.append(
            Sample(
                image=str(img.image),
                prompt=REFSEG_PROMPT.format(expression=ref.expression),
                answer=REFSEG_ANSWER,
                task="refseg",
                masks=[o.mask_spec()],
                meta={
                    "id": _id(img, "refseg", k),
                    "expression": ref.expression,
                    "category": o.category,
                    "constraints": ref.constraints,
                    "box": list(o.box),
                    "form": "instance",
                },
            )
        )
    if with_all:
        multi = sorted(c for c, n in img.counts().items() if n >= 2)
        if multi:
            c = multi[int(rng.integers(len(multi)))]
            members = [o for o in img.instances if o.category == c]
            expression = class_expression(c)
            out.append(
                Sample(
                    image=str(img.image),
                    prompt=REFSEG_PROMPT.format(expression=expression),
                    answer=REFSEG_ANSWER,
                    task="refseg",
                    masks=[union_spec(members)],
                    meta={
                        "id": _id(img, "refseg-all", 0),
                        "expression": expression,
                        "category": c,
                        "count": len(members),
                        "form": "all",
                    },
                )
            )
    return out


# ------------------------------------------------------------------------------------------------
def _q(question: str, answer: object, qtype: str, **meta: object) -> Question:
    return {
        "question": question,
        "answer": str(answer),
        "type": qtype,
        **{k: str(v) for k, v in meta.items()},
    }


def presence_question(category: str, rng: np.random.Generator | None = None) -> str:
    """ "Is there a ship in this image?" (with `rng`: one of RSVQA's wordings, for training)."""
    a, pl = article(category), plural(category)
    if rng is None:
        return f"Is there {a} {category} in this image?"
    forms = (
        f"Is there {a} {category} in this image?",
        f"Is there {a} {category}?",
        f"Is {a} {category} present?",
        f"Are there {pl} in this image?",
    )
    return forms[int(rng.integers(len(forms)))]


def presence_questions(
    img: InstanceImage, rng: np.random.Generator, varied: bool = False, n_no: int | None = None
) -> list[Question]:
    """ "yes" for every present class, "no" for as many known-absent classes (seeded choice), or for
    `n_no` of them."""
    present = sorted(img.counts())
    absent = [c for c in img.absent if c not in present]
    rng.shuffle(absent)
    wording = rng if varied else None
    n_no = len(present) if n_no is None else n_no
    out = [_q(presence_question(c, wording), "yes", "presence", category=c) for c in present]
    out += [_q(presence_question(c, wording), "no", "presence", category=c) for c in absent[:n_no]]
    return out


def count_question(category: str, rng: np.random.Generator | None = None) -> str:
    pl = plural(category)
    if rng is not None and rng.random() < 0.5:
        return f"What is the number of {pl}?"
    return f"How many {pl} are there?"


def count_questions(
    img: InstanceImage,
    rng: np.random.Generator,
    cap: int | None = COUNT_CAP,
    zeros: int = 0,
    varied: bool = False,
) -> list[Question]:
    """Exact counts of the present classes with at most `cap` instances, and `zeros` absent ones (0)."""
    counts = img.counts()
    wording = rng if varied else None
    out = [
        _q(count_question(c, wording), n, "count", category=c)
        for c, n in sorted(counts.items())
        if cap is None or n <= cap
    ]
    absent = [c for c in img.absent if c not in counts]
    rng.shuffle(absent)
    out += [_q(count_question(c, wording), 0, "count", category=c) for c in absent[:zeros]]
    return out


def comparison_questions(img: InstanceImage, rng: np.random.Generator, n: int = 3) -> list[Question]:
    """RSVQA's comparisons ("Are there more X than Y?", "less", "equal") between classes whose counts
    are known, at least one present; as balanced between yes and no as the image allows."""
    counts = img.counts()
    known = sorted(set(counts) | set(img.absent))
    pairs = [(a, b) for a in known for b in known if a != b and (a in counts or b in counts)]
    order = rng.permutation(len(pairs))
    by_answer: dict[str, list[Question]] = {"yes": [], "no": []}
    for i in order:
        a, b = pairs[int(i)]
        na, nb = counts.get(a, 0), counts.get(b, 0)
        pa, pb = plural(a), plural(b)
        form = int(rng.integers(3))
        if form == 0:
            q, yes = f"Are there more {pa} than {pb}?", na > nb
        elif form == 1:
            q, yes = f"Are there less {pa} than {pb}?", na < nb
        else:
            q, yes = f"Is the number of {pa} equal to the number of {pb}?", na == nb
        by_answer["yes" if yes else "no"].append(_q(q, "yes" if yes else "no", "comp", first=a, second=b))
    out: list[Question] = []
    yes, no = by_answer["yes"], by_answer["no"]
    while len(out) < n and (yes or no):
        for pool in (yes, no) if len(out) % 2 == 0 else (no, yes):
            if pool:
                out.append(pool.pop(0))
                break
    return out


def vqa_samples(img: InstanceImage, questions: Sequence[Question], start: int = 0) -> list[Sample]:
    return [
        Sample(
            image=str(img.image),
            prompt=VQA_PROMPT.format(question=q["question"]),
            answer=q["answer"],
            task="vqa",
            meta={"id": _id(img, "vqa", start + k), **q},
        )
        for k, q in enumerate(questions)
    ]


# ------------------------------------------------------------------------------------------------
def _round_robin(img: InstanceImage, rng: np.random.Generator, min_area: float) -> list[int]:
    """Instance indices, rarest class first, alternating between classes (seeded within a class)."""
    by_class: dict[str, list[int]] = {}
    for i in rng.permutation(len(img.instances)):
        if img.instances[int(i)].area >= min_area:
            by_class.setdefault(img.instances[int(i)].category, []).append(int(i))
    queues = sorted(by_class.values(), key=len)
    return [q[k] for k in range(max(map(len, queues), default=0)) for q in queues if k < len(q)]


def roc_samples(img: InstanceImage, rng: np.random.Generator, n: int = 3) -> list[Sample]:
    """Box -> class for up to `n` instances (round robin over the classes)."""
    out = []
    for k, i in enumerate(_round_robin(img, rng, MIN_AREA)[:n]):
        o = img.instances[i]
        out.append(
            Sample(
                image=str(img.image),
                prompt=ROC_PROMPT.format(box=box_text(o.box, img.width, img.height)),
                answer=o.category,
                task="roc",
                meta={"id": _id(img, "roc", k), "class": o.category, "box": list(o.box)},
            )
        )
    return out


@dataclass(frozen=True)
class Description:
    """A grounded description: text with one `<p> phrase </p> [SEG]` per mentioned instance."""

    text: str
    phrases: list[str]
    objects: list[int]  # the instance index of each [SEG], in order


def gcg_description(
    img: InstanceImage,
    setting: str | None = None,
    max_classes: int | None = 4,
    per_class: int = 3,
    min_area: float = MIN_AREA,
) -> Description | None:
    """The one GCG text builder (GeoPixelD's `<p> tennis court-1 </p> [SEG]` naming): the largest
    instances of up to `max_classes` classes, largest class first. The opening sentence names the
    `setting` where the source knows it ("The image is an aerial view of a harbor.") and otherwise
    lists the classes' counts; an instance's colour word, where known, leads its phrase. None when
    no instance is large enough and no setting is known."""
    by_class: dict[str, list[int]] = {}
    for i, o in enumerate(img.instances):
        if o.area >= min_area:
            by_class.setdefault(o.category, []).append(i)
    if not by_class and setting is None:
        return None
    inst = img.instances
    classes = sorted(by_class, key=lambda c: (-max(inst[i].area for i in by_class[c]), c))[:max_classes]
    if setting is not None:
        text = [f"The image is an aerial view of {setting}."]
    else:
        summary = [f"{len(by_class[c])} {plural(c) if len(by_class[c]) > 1 else c}" for c in classes]
        listed = summary[0] if len(summary) == 1 else ", ".join(summary[:-1]) + f" and {summary[-1]}"
        text = [f"The image is an aerial view showing {listed}."]
    phrases: list[str] = []
    objects: list[int] = []
    for c in classes:
        idx = sorted(by_class[c], key=lambda i: -inst[i].area)[:per_class]
        parts = []
        for k, i in enumerate(idx, 1):
            p = f"{c}-{k}" if len(by_class[c]) > 1 else c
            p = f"{inst[i].colour} {p}" if inst[i].colour else p
            phrases.append(p)
            objects.append(i)
            parts.append(f"<p> {p} </p> [SEG] {CELLS[cell_of(*inst[i].centre, img.width, img.height)]}")
        n = len(by_class[c])
        if n == 1:
            text.append(f"The {parts[0]}.")
        elif n == len(idx):
            text.append(f"The {plural(c)} are the " + ", the ".join(parts[:-1]) + f" and the {parts[-1]}.")
        else:
            text.append(
                f"The largest {plural(c)} are the " + ", the ".join(parts[:-1]) + f" and the {parts[-1]}."
            )
    if not objects:
        text.append("No distinct objects stand out.")
    return Description(" ".join(text), phrases, objects)


def gcg_sample(
    img: InstanceImage,
    max_classes: int | None = 4,
    per_class: int = 3,
    setting: str | None = None,
    min_area: float = MIN_AREA,
) -> Sample | None:
    """The GCG sample of `gcg_description` (one mask per [SEG]); None for an image without
    instances large enough to mention."""
    d = gcg_description(img, setting, max_classes, per_class, min_area)
    if d is None or not d.objects:
        return None
    return Sample(
        image=str(img.image),
        prompt=GCG_PROMPT,
        answer=d.text,
        task="gcg",
        masks=[img.instances[i].mask_spec() for i in d.objects],
        meta={"id": _id(img, "gcg", 0), "phrases": d.phrases},
    )


def training_samples(
    img: InstanceImage, rng: np.random.Generator, count_cap: int | None = COUNT_CAP
) -> list[Sample]:
    """A few of every task for one training image: refseg (3 + "all"), presence, counts, comparisons,
    ROC (2) and one GCG; varied wordings."""
    out = refseg_samples(img, rng, max_refs=3, with_all=rng.random() < 0.5)
    qs = presence_questions(img, rng, varied=True)
    qs += count_questions(img, rng, cap=count_cap, zeros=int(rng.random() < 0.3), varied=True)
    qs += comparison_questions(img, rng, n=2)
    out += vqa_samples(img, qs)
    out += roc_samples(img, rng, n=2)
    g = gcg_sample(img)
    if g is not None:
        out.append(g)
    return out


TASKS = ("refseg", "presence", "count", "comparison", "roc", "gcg")


def instance_samples(
    img: InstanceImage,
    rng: np.random.Generator,
    tasks: Sequence[str] = TASKS,
    max_refs: int = 5,
    with_all: bool = False,
    varied: bool = False,
    count_cap: int | None = COUNT_CAP,
    zeros: int = 0,
    comparisons: int = 2,
    roc: int = 5,
    setting: str | None = None,
) -> list[Sample]:
    """The one builder's entry: `tasks` of one instance image, whatever its source, in the benchmarks'
    formats (refseg as RRSIS-D, presence / count / comparison as RSVQA `vqa` samples with
    meta["type"] presence / count / comp, roc as DIOR-RSVG, gcg as GeoPixelD). The draws happen in
    the order of TASKS, so a fixed seed gives the same samples."""
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown instance tasks {unknown}; expected some of {', '.join(TASKS)}")
    out: list[Sample] = []
    if "refseg" in tasks:
        out += refseg_samples(img, rng, max_refs=max_refs, with_all=with_all)
    qs: list[Question] = []
    if "presence" in tasks:
        qs += presence_questions(img, rng, varied=varied)
    if "count" in tasks:
        qs += count_questions(img, rng, cap=count_cap, zeros=zeros, varied=varied)
    if "comparison" in tasks:
        qs += comparison_questions(img, rng, n=comparisons)
    out += vqa_samples(img, qs)
    if "roc" in tasks:
        out += roc_samples(img, rng, n=roc)
    if "gcg" in tasks and (g := gcg_sample(img, setting=setting)) is not None:
        out.append(g)
    return out
