"""The ``spendsentry`` command line: what the worker command sets up around Faust."""

from __future__ import annotations

import logging

from streams.cli.main import LOG_LEVELS, keep_log_level


async def test_the_worker_puts_the_asked_log_level_back_after_faust_start_up() -> None:
    """Faust's worker leaves the root logger at DEBUG (for its spinner) when asked for warn or
    above, so every library debug call built a record: the start-up task restores the level."""
    before = logging.root.level
    try:
        logging.root.setLevel(logging.DEBUG)  # what Faust's Worker.on_setup_root_logger does for -l warn
        await keep_log_level(LOG_LEVELS["warn"])()
        assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
        assert logging.root.level == logging.WARNING
    finally:
        logging.root.setLevel(before)
