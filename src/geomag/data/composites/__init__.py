"""Real-texture composites: real annotated objects pasted onto real backgrounds (copy-paste, Ghiasi et
al., CVPR 2021), with exact masks, boxes and counts, for nano's training and a held-out evaluation set.

objects.py cuts the object bank, backgrounds.py lists the backgrounds and what each rules out,
paste.py composes one canvas, tasks.py asks the questions, generate.py writes datasets.
"""

from geomag.data.composites.generate import generate_composites, training_samples

__all__ = ["generate_composites", "training_samples"]
