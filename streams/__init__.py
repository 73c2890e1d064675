"""CityScreen stream processing: Faust workers, aggregation and the release sink."""
