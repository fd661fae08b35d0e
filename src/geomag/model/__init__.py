"""Models: Hugging Face VLM wrapper, frozen mask encoders, pixel decoder, the GeoMag model, presets."""
