"""Infrastructure with no domain knowledge: env parsing, errors, crypto, outbox.

Nothing in this package imports one of our apps; every app may import it.
"""
