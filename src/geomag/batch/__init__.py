"""`geomag batch`: many images, prompts or windows of a huge raster in one resumable run.

jobs (sources -> jobs and their keys), window (a window of a raster as an ImageSource), runner (one
job on one predictor), engines (local: one process; ray: a Ray Data actor pool), results (the
append-only, resumable results.jsonl), outputs (per-job mask files), merge (mosaic GeoTIFF, vector
layer, COCO JSON) and run (the whole command, with its progress bar and summary).
"""
