"""The mailer's own metrics, beside servicekit's in the same registry."""

from prometheus_client import Counter, Histogram

MAIL_DELIVERIES = Counter(
    "mail_deliveries", "Outcomes of delivery attempts: sent, retrying or failed.", ["status"]
)
MAIL_DELIVERY_ATTEMPTS = Histogram(
    "mail_delivery_attempts", "Attempts a delivery took, once it is sent or given up.",
    ["status"], buckets=(1, 2, 3, 5, 8),
)  # fmt: skip

for _status in ("sent", "retrying", "failed"):  # every series from the start, at 0
    MAIL_DELIVERIES.labels(_status)
    if _status != "retrying":
        MAIL_DELIVERY_ATTEMPTS.labels(_status)


def record_outcome(status: str, attempts: int) -> None:
    MAIL_DELIVERIES.labels(status).inc()
    if status != "retrying":
        MAIL_DELIVERY_ATTEMPTS.labels(status).observe(attempts)
