"""Build (and reuse) a sink per routed :class:`~schemas.subscription.Destination`.

The worker keeps one :class:`SinkFactory`; ``sink_for(dest)`` returns the same sink for the same
destination key (so Slack message refs, pacing and HTTP connections are shared), and ``aclose``
closes them all. Slack destinations share one bot token, API URL, refs store and pacer.
"""

from __future__ import annotations

import asyncio

import httpx

from alerts.sink_protocol import Sink
from alerts.retry import RetryPolicy, Sleep
from alerts.sinks.pagerduty import PagerDutySink
from alerts.sinks.slack import ChannelPacer, SlackRefs, SlackSink
from alerts.sinks.webhook import WebhookSink
from schemas.errors import ConfigError
from schemas.subscription import Destination


class SinkFactory:
    def __init__(self, *, slack_token: str | None = None, slack_api_url: str = "https://slack.com/api/",
                 slack_refs: SlackRefs | None = None, pagerduty_url: str = "https://events.pagerduty.com",
                 retry: RetryPolicy | None = None, sleep: Sleep = asyncio.sleep,
                 webhook_client: httpx.AsyncClient | None = None) -> None:
        self.slack_token = slack_token
        self.slack_api_url = slack_api_url
        self.slack_refs = slack_refs
        self.pagerduty_url = pagerduty_url
        self.retry = retry
        self.sleep = sleep
        self.pacer = ChannelPacer(sleep=sleep)
        #: shared by every webhook and PagerDuty sink: the SSRF-guarded one (:func:`alerts.ssrf.guarded_client`)
        #: in every command that sends; owned by the caller
        self.webhook_client = webhook_client
        self._sinks: dict[str, Sink] = {}

    def sink_for(self, dest: Destination) -> Sink:
        sink = self._sinks.get(dest.key)
        if sink is not None:
            return sink
        if dest.type == "webhook":
            assert dest.url and dest.secret
            sink = WebhookSink(dest.url, dest.secret, cloudevents=dest.cloudevents, retry=self.retry,
                               sleep=self.sleep, name=dest.key, client=self.webhook_client)
        elif dest.type == "slack":
            if not self.slack_token:
                raise ConfigError("a slack destination needs SPENDSENTRY_SLACK_TOKEN")
            assert dest.channel
            sink = SlackSink(self.slack_token, dest.channel, base_url=self.slack_api_url, retry=self.retry,
                             sleep=self.sleep, refs=self.slack_refs, pacer=self.pacer, name=dest.key)
        else:
            assert dest.routing_key
            sink = PagerDutySink(dest.routing_key, base_url=self.pagerduty_url, retry=self.retry, sleep=self.sleep,
                                 name=dest.key, client=self.webhook_client)
        self._sinks[dest.key] = sink
        return sink

    def forget(self, dest_key: str) -> Sink | None:
        """Drop a sink (destination deleted or disabled); the caller closes it."""
        return self._sinks.pop(dest_key, None)

    async def aclose(self) -> None:
        for sink in list(self._sinks.values()):
            await sink.aclose()
        self._sinks.clear()
