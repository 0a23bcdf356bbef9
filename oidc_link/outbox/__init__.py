"""The outbox's delivery (issue 18): entries the store's streams hold (store/outbox.py),
handed on and delivered at least once by every instance, each kind by its handler."""
