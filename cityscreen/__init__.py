"""CityScreen's pure core: event schemas, H3 binning, demography, aggregate and frame schemas, settings.

Imports only the standard library, pydantic, msgspec, h3 and numpy, so the streams and the services
can both depend on it (tests/unit/test_core_is_pure.py holds it to that).
"""
