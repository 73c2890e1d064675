"""Pure aggregation: events to per-partition window partials, partials to exact `WindowAggregate`s.

No Faust, Kafka or Redis here: the workers in `streams.worker` feed these functions and persist what they
return, so every rule below is unit-tested without a broker.
"""
