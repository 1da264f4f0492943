"""Events between services: the envelope; the outbox and the relay that publishes it; the
consumer and its record of handled events; the workers a service runs, built from settings."""
