"""CityScreen services: local stack, generator, gateway and the command line."""
