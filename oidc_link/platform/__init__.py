"""The platform's objects behind /v1: accounts, Account Links, account sessions and
Idempotency-Key replay. Web code imports the modules; nothing is re-exported here."""
