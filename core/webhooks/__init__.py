"""Webhooks (SPEC section 15): models, signing, target checks, payloads, retry policy and
the delivery loop. The service that stores them is ``core.services.webhooks``."""
