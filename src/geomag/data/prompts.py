"""The benchmarks' prompt formats and box text: the single place that says how a sample is asked.

Training data (GeoScenes, composites, the instance-task builder) and evaluation (the benchmark
loaders, which re-export these names from geomag.data.loaders.common / .geopixeld) use the same
wording. A module of its own, below the loaders: the task builder needs the prompts without
importing the loaders package, whose benchmark registry imports the builder.
"""

from __future__ import annotations

CAPTION_PROMPT = "Describe the image in one sentence."
SCENE_PROMPT = (
    "Classify the image into one of the following classes: {classes}. Answer with the class name only."
)
VQA_PROMPT = "{question} Answer with one word or a number."
ROC_PROMPT = "What is the object at {box}? Answer with its class."
REFSEG_PROMPT = "Segment {expression}."
GCG_PROMPT = (
    "Could you perform an in-depth analysis of this photo, including interleaved segmentation masks "
    "to map each part of your answer to specific image object?"
)


def box_text(box: tuple[float, float, float, float], width: int, height: int) -> str:
    """A pixel box as '[x0, y0, x1, y1]' in percent of the image size (0..100, integers).

    Relative coordinates, because the VLM sees the image resized to its own input size.
    """
    x0, y0, x1, y1 = box
    vals = [x0 / width, y0 / height, x1 / width, y1 / height]
    return "[" + ", ".join(str(round(100 * v)) for v in vals) + "]"
