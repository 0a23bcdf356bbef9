"""Webhooks: signing a delivery, making one attempt at it, and the outbox's kind that turns
an event into deliveries to the endpoints subscribed to it (deliveries.py)."""
