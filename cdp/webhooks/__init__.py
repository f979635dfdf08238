"""Webhooks: signed HTTP deliveries of outbox changes to integrators' subscriptions.

Changes are written to the outbox in the transaction that makes them (cdp.core.outbox);
the relay fans them out to subscriptions, and each delivery is sent, retried with
backoff and logged per attempt here.
"""
