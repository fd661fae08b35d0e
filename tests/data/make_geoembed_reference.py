"""Regenerate geoembed_v3_reference.npz with the geoembed package's OWN forward pass (not our port).

geoembed runs on netcl; netcl's NumPy CPU backend needs `pyopencl` importable but no OpenCL device.
Run it in a separate environment so the project does not depend on them:

    python3.11 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install numpy pillow pyopencl
    /tmp/refenv/bin/pip install --no-deps netcl==0.4.4 geoembed==1.1.2
    /tmp/refenv/bin/python tests/data/make_geoembed_reference.py ../shared/data/real/aid-150

tests/test_backbones.py compares our PyTorch port against the stored embeddings.
"""

import sys
from pathlib import Path

import geoembed
import numpy as np
from PIL import Image

IMAGES = ["Airport/airport_1.jpg", "Forest/forest_1.jpg", "Port/port_1.jpg"]

if __name__ == "__main__":
    root = Path(sys.argv[1])
    model = geoembed.Model("v3", device="cpu", num_workers=0)
    images = [Image.open(root / name).convert("RGB") for name in IMAGES]
    embeddings = model.encode(images, batch_size=len(images), num_workers=0)
    out = Path(__file__).with_name("geoembed_v3_reference.npz")
    np.savez(
        out,
        images=np.array(IMAGES),
        embeddings=embeddings.astype(np.float32),
        source=np.array(f"geoembed {geoembed.__version__} Model('v3', device='cpu').encode"),
    )
    print(out, embeddings.shape)
