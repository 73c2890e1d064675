"""Shared test support: factories, polling, reference aggregates and the helpers several test levels use."""
