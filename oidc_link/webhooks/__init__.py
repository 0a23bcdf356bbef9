"""Webhooks: signing a delivery and making one attempt at it. What to send and when to retry
belong to the outbox (a later piece), which calls ``WebhookSender.attempt``."""
