"""`geomag serve`: GeoMag as an HTTP API (FastAPI + uvicorn) with a demo page on it.

One module per concept:
- `limits`: every size and time bound of a request, with its flag default;
- `worker`: the one thread that owns the model, with its bounded queue and per-job timeout;
- `guard`: the ASGI layer in front of every route (request ids, body size and body timeout,
  the last-resort 500 that never shows a traceback to a client);
- `security`: loopback-only unless a token is set, the Bearer check, CORS;
- `uploads`: uploaded images into a private temporary folder, checked from their header;
- `encoding`: a `Result` as JSON (COCO RLE masks), GeoJSON, the overlay and the heatmap pictures;
- `app`: the routes (`create_app`); `runner`: uvicorn on a socket we bind ourselves.
The client side (`geomag parse --server`) is `geomag.client`.
"""
