"""Sources of spend data beyond the usage topic: provider payloads (``normalize``), cloud bills
(``focus``) and GPU telemetry (``gpu``). Pure parsing lives here; Kafka sending is in the CLI
commands' thin async wrappers."""
