"""The composition root: the one place that assembles the worker and its HTTP API.

:mod:`streams.worker` builds the Faust app, its agents and tables; :mod:`streams.api` registers
the routes, reading the worker only through :class:`streams.api.state.ApiState`. Nothing below
this module imports it.
"""

from __future__ import annotations

import faust

from streams.api.routes import register_pages
from streams.config import Settings
from streams.core.engine import Pricer
from streams.worker.agents import create_worker
from streams.worker.gpu_agent import register_gpu
from streams.worker.retention import register_retention
from streams.worker.runtime import Runtime


def create_app(settings: Settings, pricer: Pricer) -> tuple[faust.App, Runtime]:
    """The worker with its agents, timers and web pages, ready for ``app.main()``."""
    app, runtime = create_worker(settings, pricer)
    register_gpu(app, runtime)
    register_retention(app, runtime)
    register_pages(app, runtime)
    return app, runtime
