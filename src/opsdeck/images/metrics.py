"""Images business metrics (see docs/operations.md)."""

from prometheus_client import Counter, Histogram

IMAGES = Counter(
    "opsdeck_images_total",
    "Images finished, by status and, for failures, the reason kind.",
    ["status", "reason"],
)
IMAGE_BYTES = Counter(
    "opsdeck_image_bytes_total", "Image bytes read (in) and written (out).", ["direction"]
)
PHASE_SECONDS = Histogram(
    "opsdeck_image_phase_seconds",
    "Time spent fetching and processing one image.",
    ["phase"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WEBHOOKS = Counter(
    "opsdeck_webhook_deliveries_total", "Webhook delivery attempts by result.", ["result"]
)
