"""Sources of spend data beyond the usage topic: provider payloads (``normalize``), cloud bills
(``focus``) and GPU telemetry (``gpu``). Pure parsing lives here; the
commands that read files and send to Kafka are in :mod:`streams.cli.source_commands`."""
