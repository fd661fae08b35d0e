"""Training prompts for the task-granularity classifier, generated from templates (deterministic).

Six tasks, phrased as their benchmarks and real users phrase them (RSVQA questions, DIOR-RSVG /
RRSIS-D referring expressions, GeoPixelD GCG requests, AID/RESISC-45 zero-shot classification,
UCM/Sydney captioning), with the traps the classifier must get right: "Is there a ship?" is
region-level, "segment the ship" and a bare referring expression are pixel-level, "describe the
image" is image-level, "describe the image with masks" is pixel-level.

The committed output is data/prompts/train.tsv (`granularity<TAB>task<TAB>prompt`); regenerate it with
`python -m geomag.data.prompt_corpus --out data/prompts/train.tsv`. The held-out file
data/prompts/heldout.tsv is written by hand with other templates and vocabulary, never from here.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from pathlib import Path

TASKS = {
    "caption": "image",
    "scene": "image",
    "vqa": "region",
    "roc": "region",  # referring object classification (DIOR-RSVG)
    "res": "pixel",  # referring expression segmentation (RRSIS-D, RefSegRS)
    "gcg": "pixel",  # grounded conversation generation (GeoPixelD)
}

# Objects of DIOR / DOTA / iSAID / RRSIS-D and land-cover classes of RSVQA.
OBJECTS = [
    "airplane", "plane", "ship", "vehicle", "car", "small vehicle", "large vehicle", "storage tank",
    "tennis court", "basketball court", "baseball field", "ground track field", "soccer field",
    "swimming pool", "bridge", "harbor", "roundabout", "helicopter", "chimney", "dam", "windmill",
    "stadium", "overpass", "train station", "golf field", "expressway service area",
    "expressway toll station", "airport", "building", "road", "house", "parking lot", "tree",
]  # fmt: skip
PLURAL = {
    "airplane": "airplanes", "plane": "planes", "ship": "ships", "vehicle": "vehicles", "car": "cars",
    "small vehicle": "small vehicles", "large vehicle": "large vehicles", "storage tank": "storage tanks",
    "tennis court": "tennis courts", "basketball court": "basketball courts",
    "baseball field": "baseball fields", "ground track field": "ground track fields",
    "soccer field": "soccer fields", "swimming pool": "swimming pools", "bridge": "bridges",
    "harbor": "harbors", "roundabout": "roundabouts", "helicopter": "helicopters", "chimney": "chimneys",
    "dam": "dams", "windmill": "windmills", "stadium": "stadiums", "overpass": "overpasses",
    "train station": "train stations", "golf field": "golf fields",
    "expressway service area": "expressway service areas",
    "expressway toll station": "expressway toll stations", "airport": "airports",
    "building": "buildings", "road": "roads", "house": "houses", "parking lot": "parking lots",
    "tree": "trees",
}  # fmt: skip
RSVQA_OBJECTS = [
    "building", "residential building", "commercial building", "road", "water area", "grass area",
    "farmland", "forest", "parking", "park", "wetland", "heath", "pitch", "scrub", "golf course",
    "residential area", "industrial area", "retail area", "railway", "wood", "meadow", "hospital",
]  # fmt: skip
RSVQA_SIZE = ["", "", "small ", "medium ", "large ", "square ", "circular ", "rectangular "]
RSVQA_REL = ["on the left of", "on the right of", "at the top of", "at the bottom of", "next to"]
COLORS = ["white", "gray", "grey", "red", "blue", "green", "black", "dark", "brown", "yellow", "silver"]
SIZES = ["small", "large", "big", "tiny", "long", "huge", "little", "narrow", "wide"]
PLACES = [
    "on the left", "on the right", "at the top", "at the bottom", "in the middle", "in the center",
    "on the lower left", "on the lower right", "on the upper left", "on the upper right",
    "at the top left", "at the bottom right", "near the edge", "in the corner",
]  # fmt: skip
RELATIONS = [
    "on the right side of", "on the left side of", "at the end of", "on the roof of", "behind",
    "in front of", "across from", "along", "surrounded by", "inside", "at the edge of", "opposite",
    "to the north of", "south of", "adjacent to", "near", "by", "at the entrance of",
]  # fmt: skip
ORDINALS = ["first", "second", "third", "leftmost", "rightmost", "topmost", "largest", "smallest"]
SCENES = [
    "airport", "bare land", "baseball field", "beach", "bridge", "center", "church", "commercial",
    "dense residential", "desert", "farmland", "forest", "industrial", "meadow", "medium residential",
    "mountain", "park", "parking", "playground", "pond", "port", "railway station", "resort", "river",
    "school", "sparse residential", "square", "stadium", "storage tanks", "viaduct", "harbor",
    "island", "lake", "wetland", "snowberg", "circular farmland", "terrace", "thermal power station",
    "mobile home park", "freeway", "intersection", "golf course", "chaparral", "agricultural",
]  # fmt: skip
IMAGE_WORDS = [
    "image", "picture", "photo", "scene", "remote sensing image", "aerial image", "satellite image",
    "aerial photo", "satellite photo", "photograph", "view", "shot", "capture", "tile", "frame",
    "snapshot", "overhead image", "overhead view", "UAV image", "drone image", "orthophoto",
    "image patch", "Google Earth image", "GF-2 image", "WorldView image",
]  # fmt: skip
# Extra object names from FAIR1M / xView / DOTA-v2 for referring expressions and questions. Nouns used
# in data/prompts/heldout.tsv are left out on purpose, so the held-out file measures new vocabulary.
EXTRA_OBJECTS = [
    "passenger ship", "tugboat", "warship", "cargo truck", "dump truck", "trailer", "excavator",
    "truck tractor", "shed", "tent", "barge", "ferry", "container ship", "oil tanker", "sailboat",
    "mobile crane", "cement mixer", "front loader", "construction site", "intersection",
    "football field", "parking garage", "gas station", "water tower", "field",
    "farmland", "forest", "meadow", "residential area", "water area", "grass area", "park", "parking",
    "playground", "building block", "villa", "apartment block", "school building", "railway station",
    "railway line", "footbridge", "power station", "substation", "oil well",
    # nouns frequent in the real UCM / Sydney / RSICD captions
    "lawn", "bunker", "ocean", "beach", "sand", "runway", "trail", "freeway", "crossroad", "grassland",
    "bush", "path", "street", "ranch", "aircraft", "wheat field", "coast", "island", "pond", "mountain",
    "viaduct", "baseball diamond", "luggage cart", "umbrella", "court", "slope", "pit", "clearing",
    "backyard", "home", "mobile home", "wasteland", "sports field", "badminton court", "gym",
    "water tank", "speedboat", "tarmac", "coconut tree", "loess", "industrial building", "airport terminal",
]  # fmt: skip
BENCHMARKS = ["AID", "RESISC-45", "NWPU-RESISC45", "UC Merced", "UCM", "WHU-RS19", "PatternNet", "SIRI-WHU"]
AREAS = ["city", "town", "neighbourhood", "landscape", "countryside", "coastline", "district", "suburb",
         "industrial zone", "village"]  # fmt: skip


def _plural(noun: str) -> str:
    if noun in PLURAL:
        return PLURAL[noun]
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def _pick(rng: random.Random, items: list[str]) -> str:
    return rng.choice(items)


def _the(rng: random.Random) -> str:
    return rng.choice(["the", "this", "the given", "this"])


def _img(rng: random.Random) -> str:
    return _pick(rng, IMAGE_WORDS)


def _polish(rng: random.Random, text: str) -> str:
    """Casing and punctuation noise that real users produce."""
    text = " ".join(text.split())
    r = rng.random()
    if r < 0.08:
        text = text.lower()
    elif r < 0.14 and text[-1:] in ".?":
        text = text[:-1]
    return text[:1].upper() + text[1:] if rng.random() < 0.85 else text


# ---------------------------------------------------------------- image level
def caption(rng: random.Random) -> str:
    img = _img(rng)
    the = _the(rng)
    detail = _pick(rng, ["", "", " in detail", " briefly", " in one sentence", " in a few words",
                         " in detail, mentioning the main land-cover types"])  # fmt: skip
    return _pick(rng, [
        f"Describe {the} {img}{detail}.",
        f"Please describe {the} {img}{detail}.",
        f"Write a caption for {the} {img}.",
        f"Write a short caption for {the} {img}.",
        f"Generate a caption for {the} {img}.",
        f"Give a brief description of {the} {img}.",
        f"Provide a one-sentence caption of {the} {img}.",
        f"Caption {the} {img}.",
        f"What does {the} {img} show?",
        f"What can you see in {the} {img}?",
        f"What is shown in {the} {img}?",
        f"Summarize {the} {img}{detail}.",
        f"Summarize what is happening in {the} {img}.",
        f"Tell me about {the} {img}.",
        f"Can you describe {the} {img}{detail}?",
        f"Could you give me a caption for {the} {img}?",
        f"Explain what {the} {img} depicts.",
        f"Give an overview of {the} {img}.",
        f"Describe the overall layout of {the} {img}.",
        f"Describe the land use visible in {the} {img}.",
        f"What is going on in {the} {img}?",
        f"[caption] Describe {the} {img}{detail}",
        f"Provide a detailed description of {the} {img}.",
        f"Write a detailed caption for {the} {img}.",
        f"Briefly describe {the} {img}.",
        f"Describe the contents of {the} {img}.",
        f"How would you describe {the} {img}?",
        f"Give me a sentence that describes {the} {img}.",
        f"Write one sentence about {the} {img}.",
        f"Describe everything you see in {the} {img}.",
        f"Please caption {the} {img}{detail}.",
        f"Give a general description of {the} {img}.",
        f"Write a description of {the} {img} as in the UCM-Captions dataset.",
        "Describe this.",
        f"What is {the} {img} about?",
        f"Talk me through {the} {img}.",
        f"Give me a summary of {the} {img}.",
        f"Write an alt text for {the} {img}.",
        f"Produce a description of the whole {img}.",
        f"Describe the {_pick(rng, AREAS)} as seen from above.",
        f"Describe the {_pick(rng, AREAS)} shown in {the} {img}.",
        f"Describe the region shown in {the} {img}.",
        f"Describe the area covered by {the} {img} as a whole.",
        f"Give {the} {img} a title.",
        f"Summarise {the} {img} for a report.",
        "What does this place look like from above?",
        f"Describe what the {_pick(rng, ['drone', 'satellite', 'aircraft', 'camera'])} captured.",
        f"Describe the {img}",
        f"{img} caption",
    ])  # fmt: skip


def _class_list(rng: random.Random) -> str:
    names = rng.sample(SCENES, rng.randint(4, 14))
    sep = _pick(rng, [", ", ", ", "; ", " / ", ","])
    return sep.join(names)


def scene(rng: random.Random) -> str:
    img = _img(rng)
    the = _the(rng)
    classes = _class_list(rng)
    answer = _pick(rng, ["", "", " Answer with one word.", " Answer in one word or a short phrase.",
                         " Reply with the class name only.", " Answer with a single class name."])  # fmt: skip
    a, b = rng.sample(SCENES, 2)
    return _pick(rng, [
        f"Classify {the} {img} from the following classes: {classes}.{answer}",
        f"Classify the given image in one of the following classes. Classes: {classes}.{answer}",
        f"Classify {the} {img} into one of these categories: {classes}.{answer}",
        f"Which of the following classes does {the} {img} belong to: {classes}?{answer}",
        f"Choose the scene category of {the} {img} from: {classes}.{answer}",
        f"What is the scene category of {the} {img}?{answer}",
        f"What type of scene is shown in {the} {img}?{answer}",
        f"What kind of scene is this?{answer}",
        f"Which land-use class does {the} {img} belong to?{answer}",
        f"What is the land-use type of {the} {img}?",
        f"Classify {the} {img}.{answer}",
        f"Classify the scene.{answer}",
        f"Assign a scene label to {the} {img}.",
        f"Which scene class fits {the} {img} best: {classes}?",
        f"Categorize {the} {img} into a land-use category.",
        f"[identify] What is the category of {the} {img}?",
        f"Is {the} {img} a {a} or a {b} scene?",
        f"Does {the} {img} show a {a} scene or a {b} scene?",
        f"Label {the} {img} with one of: {classes}.",
        f"Scene classification. Classes: {classes}. What is the class of {the} {img}?",
        f"Which category best describes the whole {img}: {classes}?",
        f"Identify the scene type of {the} {img}.{answer}",
        f"What land cover category is {the} {img}?{answer}",
        f"Tell me the scene class of {the} {img}.",
        f"Which {_pick(rng, BENCHMARKS)} class does {the} {img} belong to?",
        f"Give the {_pick(rng, BENCHMARKS)} category of {the} {img}.",
        f"Predict the {_pick(rng, BENCHMARKS)} scene label of {the} {img}.",
        f"What is the overall land-use class of {the} {img}?",
        f"Which label describes the whole {img}: {classes}?",
        f"Choose the label: {classes}.",
        f"Pick the right category for {the} {img} among: {classes}.",
        f"Determine whether {the} {img} shows a {a}, a {b} or a {_pick(rng, SCENES)}.",
        f"Zero-shot scene classification. Options: {classes}.",
        f"{classes} - which one is {the} {img}?",
        f"Which type of landscape is {the} {img}?",
        f"What kind of place is shown in {the} {img}?",
    ])  # fmt: skip


# ---------------------------------------------------------------- region level
def _rsvqa_obj(rng: random.Random, plural: bool = False) -> str:
    size = _pick(rng, RSVQA_SIZE)
    obj = _pick(rng, RSVQA_OBJECTS)
    if plural:
        obj = _plural(obj)
    text = size + obj
    if rng.random() < 0.25:
        art = _pick(rng, ["a ", "the "])
        text += f" {_pick(rng, RSVQA_REL)} {art}{_pick(rng, RSVQA_OBJECTS)}"
    return text


def _any_obj(rng: random.Random) -> tuple[str, str]:
    """(singular, plural) of an object with an optional colour or size."""
    mod = _pick(rng, ["", "", "", f"{_pick(rng, COLORS)} ", f"{_pick(rng, SIZES)} "])
    obj = _pick(rng, OBJECTS if rng.random() < 0.6 else EXTRA_OBJECTS)
    return mod + obj, mod + _plural(obj)


def vqa(rng: random.Random) -> str:
    img = _img(rng)
    the = _the(rng)
    (o1, p1), (o2, p2) = _any_obj(rng), _any_obj(rng)
    in_img = _pick(rng, ["", "", f" in {the} {img}"])
    kind = rng.random()
    if kind < 0.45:  # the RSVQA question generator's own wording
        r1, r2 = _rsvqa_obj(rng), _rsvqa_obj(rng, plural=True)
        r3 = _rsvqa_obj(rng, plural=True)
        return _pick(rng, [
            f"Is there a {r1}{in_img}?",
            f"Is a {r1} present{in_img}?",
            f"How many {r2} are there{in_img}?",
            f"What is the number of {r2}{in_img}?",
            f"What is the amount of {r2}{in_img}?",
            f"Are there more {r2} than {r3}{in_img}?",
            f"Are there less {r2} than {r3}{in_img}?",
            f"Is the number of {r2} equal to the number of {r3}{in_img}?",
            f"What is the area covered by {r2}{in_img}?",
            "Is it a rural or an urban area",
            "Is it a rural or an urban area?",
        ])  # fmt: skip
    return _pick(rng, [
        f"Is there a {o1}{in_img}?",
        f"Is there any {o1}{in_img}?",
        f"Are there any {p1}{in_img}?",
        f"Are there {p1} near the {o2}?",
        f"Can you see a {o1}{in_img}?",
        f"Do you see any {p1}?",
        f"Does {the} {img} contain a {o1}?",
        f"Does {the} {img} contain {p1}?",
        f"Is a {o1} visible{in_img}?",
        f"Is the {o1} present?",
        f"How many {p1} are there{in_img}?",
        f"How many {p1} can you see?",
        f"How many {p1} are visible{in_img}?",
        f"Count the {p1}{in_img}.",
        f"Count the number of {p1}.",
        f"What is the total number of {p1}?",
        f"Are there more {p1} than {p2}?",
        f"Are there fewer {p1} than {p2}?",
        f"Which is more common here, {p1} or {p2}?",
        f"Is the number of {p1} greater than the number of {p2}?",
        f"What percentage of {the} {img} is covered by {p1}?",
        f"How much area do the {p1} cover?",
        f"What color is the {o1}?",
        f"What color are the {p1}?",
        f"What is the color of the {o1} {_pick(rng, PLACES)}?",
        f"Is the {o1} to the left of the {o2}?",
        f"Is the {o1} larger than the {o2}?",
        f"Where is the {o1} located?",
        f"Where is the {o1}? Answer with a bounding box.",
        f"Give the bounding box of the {o1}.",
        f"Locate the {o1} and output its box coordinates.",
        f"[refer] Give me the location of the {o1}.",
        f"Detect all {p1}{in_img}.",
        f"Find the {p1} and give their bounding boxes.",
        "Is the area urban or rural?",
        "Is this a rural or an urban area?",
        "Is this area urban?",
        f"Are the {p1} parked?",
        f"What is next to the {o1}?",
        f"What is the {o1} {_pick(rng, PLACES)} used for?",
        f"Is there water{in_img}?",
        "Are the roads paved?",
        f"[vqa] Is there a {o1}{in_img}?",
        f"[vqa] How many {p1} are there?",
        f"Answer the question: is there a {o1}?",
        f"What {_pick(rng, ['share', 'fraction', 'percentage', 'proportion', 'part'])} of {the} {img} is covered by {p1}?",
        f"What {_pick(rng, ['share', 'fraction', 'percentage', 'proportion'])} of {the} {img} is {_pick(rng, ['water', 'vegetation', 'built-up', 'forest', 'farmland'])}?",
        f"Is this a {_pick(rng, ['city', 'town', 'urban'])} or a {_pick(rng, ['countryside', 'rural', 'village'])} {_pick(rng, ['scene', 'area', 'place'])}?",
        f"Is this place {_pick(rng, ['rural', 'urban', 'in a city', 'in the countryside'])}?",
        f"Draw a box around the {o1}.",
        f"Put a bounding box on each of the {p1}.",
        f"Mark the {p1} with bounding boxes.",
        f"Is there a {_pick(rng, EXTRA_OBJECTS)}{in_img}?",
        f"How many {_plural(_pick(rng, EXTRA_OBJECTS))} are there?",
        f"Can you see any {_plural(_pick(rng, EXTRA_OBJECTS))}?",
        f"Are there any {_pick(rng, ['parked', 'moving', 'docked', 'anchored', 'damaged', 'empty'])} {p1}?",
        f"Which side of the {o2} is the {o1} on?",
        f"On which side of the {o2} is the {o1}?",
        f"How many {p1} {_pick(rng, ['cross', 'border', 'touch', 'surround', 'are next to'])} the {o2}?",
        f"Is the {o1} {_pick(rng, ['north', 'south', 'east', 'west'])} of the {o2}?",
        f"Does the {o1} cross the {o2}?",
        f"Question: how many {p1} are present? Answer with a number.",
    ])  # fmt: skip


def _box(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.45:
        x1, y1 = rng.randint(0, 700), rng.randint(0, 700)
        x2, y2 = x1 + rng.randint(8, 300), y1 + rng.randint(8, 300)
    elif style < 0.75:
        x1, y1 = rng.randint(0, 90), rng.randint(0, 90)
        x2, y2 = (
            x1 + rng.randint(3, 100 - x1 if x1 < 97 else 3),
            y1 + rng.randint(3, 100 - y1 if y1 < 97 else 3),
        )
    else:
        x1, y1 = round(rng.random() * 0.8, 2), round(rng.random() * 0.8, 2)
        x2, y2 = round(x1 + rng.random() * 0.2 + 0.01, 2), round(y1 + rng.random() * 0.2 + 0.01, 2)
    fmt = rng.random()
    if fmt < 0.45:
        return f"[{x1}, {y1}, {x2}, {y2}]"
    if fmt < 0.55:
        return f"[{x1},{y1},{x2},{y2}]"
    if fmt < 0.65:
        return f"({x1}, {y1}, {x2}, {y2})"
    if fmt < 0.75:
        return f"{{<{x1}><{y1}><{x2}><{y2}>}}"  # GeoChat
    if fmt < 0.82:
        return f"<box>[[{x1}, {y1}, {x2}, {y2}]]</box>"  # Qwen-VL style
    if fmt < 0.9:
        return f"x1={x1}, y1={y1}, x2={x2}, y2={y2}"
    return f"[{x1} {y1} {x2} {y2}]"


def roc(rng: random.Random) -> str:
    box = _box(rng)
    img = _img(rng)
    return _pick(rng, [
        f"What is the object present at {box}?",
        f"What is the object present at {box}",
        f"What object is present at {box}?",
        f"What is the object in the region {box}?",
        f"What object is located at {box}?",
        f"Identify the object at {box}.",
        f"Identify the object inside the box {box}.",
        f"Classify the object located at {box}.",
        f"What category does the object at {box} belong to?",
        f"What is in the bounding box {box}?",
        f"What is inside {box}?",
        f"Name the object in {box}.",
        f"Which class is the object at {box}?",
        f"Tell me what the object at {box} is.",
        f"Describe the object in the region {box}.",
        f"Describe the region {box} of the {img}.",
        f"Give a short description of the object at {box}.",
        f"[identify] What is the object present at {box}?",
        f"[identify] {box}",
        f"What is this object {box}?",
        f"Region {box}: what is it?",
        f"Object at {box}?",
        f"Can you tell me what is at {box} in the {img}?",
        f"What type of object occupies {box}?",
        f"What is the object bounded by {box}?",
        f"Please identify the target at coordinates {box}.",
    ])  # fmt: skip


# ---------------------------------------------------------------- pixel level
def _ref_expr(rng: random.Random) -> str:
    """A bare referring expression, RRSIS-D / RefSegRS / DIOR-RSVG style."""
    obj = _pick(rng, OBJECTS if rng.random() < 0.6 else EXTRA_OBJECTS)
    color, size, place = _pick(rng, COLORS), _pick(rng, SIZES), _pick(rng, PLACES)
    other = _pick(rng, OBJECTS + EXTRA_OBJECTS)
    det = _pick(rng, ["the", "the", "a", "The", "A"])
    return _pick(rng, [
        f"{det} {obj} {place}",
        f"{det} {color} {obj} {place}",
        f"{det} {size} {obj} {place}",
        f"{det} {size} {color} {obj}",
        f"{det} {color} {obj}",
        f"{det} {obj} that is {place}",
        f"{det} {obj} which is {place} of the {other}",
        f"{det} {obj} next to the {other}",
        f"{det} {obj} is {place}",
        f"{det} {obj} on the {_pick(rng, ['left', 'right', 'top', 'bottom'])} of the {other}",
        f"{det} {_pick(rng, ORDINALS)} {obj} from the {_pick(rng, ['left', 'right', 'top', 'bottom'])}",
        f"{det} {obj} in the {_pick(rng, ['upper', 'lower', 'middle'])} part of the image",
        f"{_plural(obj)} in the {_pick(rng, ['upper', 'lower', 'left', 'right'])} half",
        f"{det} {obj} close to the {other} {place}",
        f"{det} {size} {obj} below the {other}",
        f"{det} {obj} above the {other}",
        f"{det} {color} {obj} parked along the road",
        f"{det} {obj} near the river",
        f"{obj} {place}",
        f"{obj}",
        f"{_plural(obj)} along the road",
        f"{_plural(obj)} {place}",
        f"{det} {obj} closest to the {other}",
        f"the {_pick(rng, ['biggest', 'largest', 'smallest', 'longest', 'tallest', 'widest', 'nearest', 'last'])} {obj}",
        f"the {_pick(rng, ['biggest', 'largest', 'smallest', 'longest', 'widest'])} {obj} {place}",
        f"{det} {obj} beside the {other}",
        f"{det} {obj} between the {other} and the {_pick(rng, OBJECTS)}",
        f"{det} {obj} {_pick(rng, RELATIONS)} the {other}",
        f"{det} {color} {obj} {_pick(rng, RELATIONS)} the {other}",
        f"{_plural(obj)} {_pick(rng, RELATIONS)} the {other}",
        f"{det} {obj} with a {color} roof",
        f"{det} {color} and {_pick(rng, COLORS)} {obj}",
        f"{det} {obj} is {size} and {color}",
        f"The {obj} {place} is {color}",
    ])  # fmt: skip


def res(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return _ref_expr(rng)
    expr = _ref_expr(rng)
    expr = expr[:1].lower() + expr[1:]
    img = _img(rng)
    return _pick(rng, [
        f"Segment {expr}.",
        f"Please segment {expr}.",
        f"Segment {expr} in the {img}.",
        f"Can you segment {expr}?",
        f"Could you segment {expr} in this {img}?",
        f"Generate a mask for {expr}.",
        f"Give me the mask of {expr}.",
        f"Output the segmentation mask of {expr}.",
        f"Produce a segmentation mask for {expr}.",
        f"Create a binary mask of {expr}.",
        f"Mask {expr}.",
        f"Highlight the pixels of {expr}.",
        f"Delineate {expr}.",
        f"Outline {expr} with a mask.",
        f"Extract {expr} as a mask.",
        f"Draw the exact outline of {expr}.",
        f"Segment all {PLURAL[_pick(rng, OBJECTS)]}.",
        f"Segment every {_pick(rng, OBJECTS)} in the {img}.",
        f"Where is {expr}? Please output segmentation mask.",
        f"Where is {expr}? Please respond with segmentation mask.",
        f"What is {expr} in this {img}? Please output segmentation mask.",
        f"Please segment {expr} in this {img}.",
        f"Can you segment {expr} in this {img}? Please output the segmentation mask.",
        f"Find {expr} and give its pixel mask.",
        f"Show me the exact pixels of {expr}.",
        f"Pixel-level segmentation of {expr}.",
        f"[seg] {expr}",
        f"[refer] segment {expr}",
        f"Label each pixel that belongs to {expr}.",
        f"Segment out {expr}.",
        f"Mask out {expr}.",
        f"Please provide the segmentation of {expr}.",
        f"I want a mask of {expr}.",
        f"Segment {expr} and return the mask as PNG.",
        f"Shade the pixels of {expr}.",
        f"Give the silhouette of {expr}.",
        f"Select the pixels that belong to {expr}.",
        f"Annotate {expr} with a polygon mask.",
        f"Produce a binary map of {expr}.",
        f"Return the segmentation for {expr}.",
        f"Which pixels show {expr}?",
        f"Pick out {expr} at pixel level.",
        f"Can you mask {expr}?",
        f"Could you produce masks for all {_plural(_pick(rng, OBJECTS + EXTRA_OBJECTS))}?",
        f"Can you delineate {expr}?",
        f"Could you outline {expr}?",
        f"Would you segment {expr} for me?",
        f"Can you give me a mask of {expr}?",
        f"Can you extract {expr}?",
    ])  # fmt: skip


def gcg(rng: random.Random) -> str:
    img = _img(rng)
    the = _the(rng)
    ask = _pick(rng, [
        f"Can you provide a thorough description of {the} {img}?",
        f"Could you perform an in-depth analysis of {the} {img}?",
        f"Please describe {the} {img} in detail.",
        f"Describe {the} {img}.",
        f"Describe {the} {img}",
        f"Give a detailed caption of {the} {img}.",
        f"Write a detailed description of {the} {img}.",
        f"Explain what is in {the} {img}.",
        f"What is happening in {the} {img}?",
        f"Provide a comprehensive description of {the} {img}.",
        f"Could you give a detailed explanation of {the} {img}?",
        f"Describe {the} {img} thoroughly.",
        f"Caption {the} {img}",
        f"Analyze {the} {img}",
        f"Explain what {the} {img} shows",
        f"Summarise {the} {img}",
        f"Narrate {the} {img}",
        f"Tell me about {the} {img}",
        f"Walk me through {the} {img}",
        f"Give a comprehensive caption of {the} {img}",
        f"Write a report on {the} {img}",
    ])  # fmt: skip
    masks = _pick(rng, [
        "Please output with interleaved segmentation masks for the corresponding phrases.",
        "Please respond with interleaved segmentation masks for the corresponding parts of the answer.",
        "Include interleaved segmentation masks to map each part of your answer to specific image objects.",
        "Please output interleaved segmentation masks for the objects you mention.",
        "Provide segmentation masks for each object you mention.",
        "Segment every object you mention.",
        "Ground each phrase with a mask.",
        "Attach a segmentation mask to every noun phrase.",
        "Add a pixel mask for each described object.",
        "and output masks for the mentioned objects",
        "with segmentation masks",
        "with masks",
        "with grounded masks",
        "and segment the objects you describe",
        "Link each phrase of the description to its segmentation mask.",
        "Mark each mentioned object with [SEG].",
        "Respond with grounded phrases and their masks.",
        f"{_pick(rng, ['Segment', 'Mask', 'Ground', 'Outline', 'Delineate', 'Highlight'])} "
        f"{_pick(rng, ['each', 'every', 'all the'])} "
        f"{_pick(rng, ['object', 'feature', 'item', 'element', 'structure', 'phrase', 'part', 'building', 'thing', 'entity'])} "
        f"you {_pick(rng, ['mention', 'describe', 'name', 'refer to', 'talk about', 'discuss'])}.",
        f"and {_pick(rng, ['segment', 'mask', 'ground', 'outline'])} "
        f"{_pick(rng, ['each', 'every'])} {_pick(rng, ['object', 'feature', 'item', 'element', 'part', 'region'])} "
        f"you {_pick(rng, ['mention', 'describe', 'name', 'refer to', 'discuss'])}",
    ])  # fmt: skip
    if masks[0].islower():
        return f"{ask.rstrip('.?')} {masks}."
    return _pick(rng, [
        f"{ask} {masks}",
        f"{masks} {ask}",
        f"{ask.rstrip('.?')}, including interleaved segmentation masks to map each part of your answer to specific image object?",
        f"Grounded caption: describe {the} {img} and segment each mentioned object.",
        f"Generate a grounded description of {the} {img} with a mask for every phrase.",
        f"Give a grounded caption of {the} {img}.",
        f"Provide a grounded conversation answer for {the} {img} with segmentation masks.",
        f"Describe {the} {img} with masks.",
        f"Describe {the} {img} and segment everything you mention.",
        f"Write a caption of {the} {img} with a segmentation mask for each object.",
        f"Describe {the} {img} with pixel-level grounding.",
        f"Segment and describe all objects in {the} {img}.",
        f"Describe and segment the main objects in {the} {img}.",
        f"[grounding] Describe {the} {img} in detail",
    ])  # fmt: skip


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "caption": caption,
    "scene": scene,
    "vqa": vqa,
    "roc": roc,
    "res": res,
    "gcg": gcg,
}


def generate(per_task: int = 1000, seed: int = 0) -> list[tuple[str, str, str]]:
    """(granularity, task, prompt) rows: `per_task` distinct prompts for each of the six tasks."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for task, make in GENERATORS.items():
        count, tries = 0, 0
        while count < per_task:
            tries += 1
            if tries > per_task * 200:
                raise RuntimeError(f"templates for {task} cannot give {per_task} distinct prompts")
            prompt = _polish(rng, make(rng))
            key = prompt.lower()
            if key in seen:
                continue
            seen.add(key)
            rows.append((TASKS[task], task, prompt))
            count += 1
    return rows


def write_tsv(rows: list[tuple[str, str, str]], path: str | Path) -> None:
    """Write rows as `granularity<TAB>task<TAB>prompt` with a header line."""
    lines = ["granularity\ttask\tprompt"] + ["\t".join(row) for row in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/prompts/train.tsv")
    parser.add_argument("--per-task", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = generate(args.per_task, args.seed)
    write_tsv(rows, args.out)
    print(f"wrote {len(rows)} prompts to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
