"""Infrastructure with no domain knowledge: env parsing, errors, crypto, outbox, and the
HTTP layer every API builds on (`cdp.core.http`).

Nothing in this package imports one of our apps; every app may import it.
"""
