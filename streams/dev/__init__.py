"""Developer tools: the local Kafka broker, the live demo, its traffic generator, benchmarks.

Not used by the worker or the API; may import anything below :mod:`streams.cli`.
"""
