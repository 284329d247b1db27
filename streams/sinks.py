"""The default sinks, from the environment."""

from __future__ import annotations

from alerts.base import Sink
from alerts.sinks.log import LogSink
from alerts.sinks.slack import SlackSink
from alerts.sinks.webhook import WebhookSink
from schemas.errors import ConfigError
from streams.config import Settings


def build_sinks(settings: Settings) -> list[Sink]:
    """Webhooks from ``SPENDSENTRY_WEBHOOK_URLS``, Slack when token and channel are set, else the log."""
    sinks: list[Sink] = []
    if settings.webhook_urls and not settings.webhook_secret:
        raise ConfigError("SPENDSENTRY_WEBHOOK_URLS needs SPENDSENTRY_WEBHOOK_SECRET (whsec_...)")
    for index, url in enumerate(settings.webhook_urls):
        sinks.append(WebhookSink(url, settings.webhook_secret or "", name=f"webhook-{index}"))
    if settings.slack_token and settings.slack_channel:
        sinks.append(SlackSink(settings.slack_token, settings.slack_channel, base_url=settings.slack_api_url))
    if not sinks:
        sinks.append(LogSink())
    return sinks
