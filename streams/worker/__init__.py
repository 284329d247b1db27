"""The Faust worker: topics, tables, agents and the state they keep per partition.

May import ``streams.core``, ``streams.sources``, ``streams.config``, ``streams.producer``,
``alerts``, ``detectors`` and ``schemas``; never ``streams.api``, ``streams.cli`` or
``streams.dev``. Assembled with the API by the composition root, :mod:`streams.app`.
"""
