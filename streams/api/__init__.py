"""The worker's HTTP API: routes, OpenAPI document, auth, ingest, Prometheus metrics.

Reads the worker through the narrow :class:`streams.api.state.ApiState` protocol; may import
``streams.core``, ``streams.sources``, ``streams.config``, ``alerts`` and ``schemas``, never
``streams.worker``, ``streams.cli`` or ``streams.dev``.
"""
