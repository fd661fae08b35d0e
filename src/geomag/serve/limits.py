"""Every bound of a request in one place: sizes, lengths, option caps, connections, queue and times.

Each is a `geomag serve` flag (defaults here); each is answered with one clear 4xx message. The
options' own bounds are the option table's (`geomag.options`); a server may cap a few of them lower
(`option_caps`), so that one request cannot ask for an hour of model work.
"""

from __future__ import annotations

from dataclasses import dataclass

from geomag.errors import GeoMagError
from geomag.options import MAX_NEW_TOKENS_LIMIT, ParseOptions
from geomag.sources import DEFAULT_LIMITS, ReadLimits

MB = 2**20


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for (flags of `geomag serve` in brackets)."""

    upload_bytes: int = 256 * MB  # request body (--max-upload-mb)
    decoded_pixels: int = DEFAULT_LIMITS.decoded_pixels  # PNG/JPEG decoded whole (--max-pixels)
    raster_pixels: int = DEFAULT_LIMITS.raster_pixels  # GeoTIFFs, read by window
    # a TIFF upload's width x height x bands, from its header (--max-raster-mp): the whole raster is
    # read once, decimated, for its stretch, so a sparse 150000 x 150000 file costs minutes
    raster_samples: int = 1_000_000_000
    prompt_chars: int = 2000  # (--max-prompt-chars)
    max_new_tokens: int = 256  # (--max-new-tokens)
    candidates: int = 4  # mask-saliency crops ranked per prompt (--max-candidates)
    answer_tokens: int = 8  # greedy tokens in the PSC loss
    working_cap: int = 8192  # longest side of the adjusted image (--max-working-cap)
    queue: int = 8  # jobs waiting behind the running one; more: 503 (--queue)
    job_timeout: float = 120.0  # seconds from submission to answer; more: 504 (--job-timeout)
    upload_timeout: float = 30.0  # longest pause while a client sends its body; more: 408 (--upload-timeout)
    connections: int = 64  # requests being handled at once; more: 503 (--max-connections)
    header_timeout: float = (
        10.0  # seconds to send a request's head (line + headers); more: closed (--header-timeout)
    )
    slow_per_client: int = (
        16  # connections of one address still sending their head; more: closed (--max-slow-per-client)
    )
    slow_total: int = 512  # such connections from all addresses; more: closed (--max-slow)

    def __post_init__(self) -> None:
        for name in ("upload_bytes", "decoded_pixels", "prompt_chars", "max_new_tokens", "candidates"):
            if getattr(self, name) < 1:
                raise GeoMagError(f"the limit {name} must be at least 1, not {getattr(self, name)}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise GeoMagError(f"--max-new-tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}")
        if self.queue < 0 or self.job_timeout <= 0 or self.upload_timeout <= 0 or self.connections < 2:
            raise GeoMagError(
                "--queue must be >= 0, --job-timeout and --upload-timeout > 0, --max-connections >= 2"
            )
        if self.header_timeout <= 0 or self.slow_per_client < 1 or self.slow_total < self.slow_per_client:
            raise GeoMagError("--header-timeout must be > 0, --max-slow-per-client >= 1 and --max-slow >= it")
        if self.raster_samples < 1:
            raise GeoMagError(f"--max-raster-mp must be above 0, not {self.raster_samples / 1e6:g}")

    def read_limits(self) -> ReadLimits:
        """The reader's limits (checked from the file's header, before any pixel is decoded)."""
        return ReadLimits(
            decoded_pixels=self.decoded_pixels, raster_pixels=self.raster_pixels, file_bytes=self.upload_bytes
        )

    def check_prompt(self, prompt: str) -> str:
        if not prompt.strip():
            raise GeoMagError("the prompt is empty")
        if len(prompt) > self.prompt_chars:
            raise GeoMagError(
                f"the prompt has {len(prompt)} characters, over the limit of {self.prompt_chars}"
            )
        return prompt

    def option_caps(self) -> dict[str, int]:
        """Options this server caps below the option table's own maximum."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "candidates": self.candidates,
            "answer_tokens": self.answer_tokens,
            "working_cap": self.working_cap,
        }

    def check_options(self, options: ParseOptions, model_layers: int | None = None) -> ParseOptions:
        """`options` (already checked against the option table by ParseOptions) within this server's
        caps and, for `layer`, the decoder layers of the model it runs."""
        for name, top in self.option_caps().items():
            value = getattr(options, name)
            if value > top:
                raise GeoMagError(f"{name} must be at most {top} on this server, not {value}")
        if model_layers is not None and not -model_layers <= options.layer < model_layers:
            raise GeoMagError(
                f"layer must be between {-model_layers} and {model_layers - 1} on this server (its "
                f"model has {model_layers} decoder layers), not {options.layer}"
            )
        return options
