"""Training loops: GeoMag model (LoRA + mask losses) and the embedded nano recipe."""
