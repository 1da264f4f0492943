"""Events between services: the envelope, the transactional outbox, the relay and the consumer."""
