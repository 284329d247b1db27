"""Issue 13: an "expected" record on ``<prefix>.control`` reaches the worker that owns the key's
usage partition: it is keyed like the usage message, and Faust's assignor gives a topic's partition
``n`` to the same worker as partition ``n`` of every topic with as many partitions and the same
subscribers (``PartitionAssignor._get_copartitioned_groups``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.assignor.partition_assignor import PartitionAssignor

from streams.app import create_app
from streams.config import Settings
from streams.core.pricing import PriceCatalogue
from streams.producer import key_message_key, message_key
from streams.worker.consumer import key_partition


@pytest.mark.parametrize("group_by", ["model", "team,model", "tags.team", "provider,tags.pipeline_stage"])
def test_a_control_record_is_keyed_to_the_usage_partition_of_its_key(group_by: str) -> None:
    dims = Settings.from_env({"SPENDSENTRY_GROUP_BY": group_by}).group_bys[0]
    event = {"model": "gpt-4o", "provider": "openai", "team": "search",
             "tags": {"team": "search", "pipeline_stage": "rerank"}}
    alert_key = {dim: event["tags"][dim[5:]] if dim.startswith("tags.") else event[dim] for dim in dims}
    assert key_message_key(alert_key, dims) == message_key(event, dims) != b"|" * (len(dims) - 1)
    assert key_partition(key_message_key(alert_key, dims), 8) == key_partition(message_key(event, dims), 8)


class _Cluster:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions[topic]))


def test_the_control_and_usage_topics_are_assigned_together(tmp_path: Path) -> None:
    settings = Settings.from_env({"SPENDSENTRY_DATA_DIR": str(tmp_path)})
    app, _ = create_app(settings, PriceCatalogue.load(None))
    topics = {t for agent in app.agents.values() for t in agent.channel.topics} | set(app.tables.changelog_topics)
    assert {settings.usage_topic, settings.control_topic} <= topics
    subscriptions = {"worker-a": sorted(topics), "worker-b": sorted(topics)}

    def groups(partitions: dict[str, int]) -> list[set[str]]:
        found = PartitionAssignor._get_copartitioned_groups(topics, _Cluster(partitions), subscriptions)
        return [group for by_count in found.values() for group in by_count]

    created = {topic: settings.partitions for topic in topics}  # what the worker creates
    assert any({settings.usage_topic, settings.control_topic, f"{settings.app_id}-meta-changelog"} <= g
               for g in groups(created))
    # the condition it rests on: a control topic made by hand with another partition count is not
    mismatched = {**created, settings.control_topic: settings.partitions * 2}
    assert not any({settings.usage_topic, settings.control_topic} <= g for g in groups(mismatched))
