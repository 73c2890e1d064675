"""The shell shared by the stream workers and the services: Kafka administration and similar plumbing.

It imports the core and libraries only; `streams/` and `services/` both import it, never each other
(the import-linter contracts in pyproject.toml hold this).
"""
