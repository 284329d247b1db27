"""streams.dev.localkafka: rendered broker config (pure) and topic creation on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from schemas.errors import SpendSentryError
from streams.dev import localkafka


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_server_properties_listeners_and_small_footprint(tmp_path: Path) -> None:
    props = _props(localkafka.render_server_properties(tmp_path, 19092))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"  # CONTROLLER never advertised
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"  # static voters: no --standalone
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["log.dirs"] == str(tmp_path.resolve() / "data")
    assert props["num.partitions"] == "8"
    assert props["auto.create.topics.enable"] == "true"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert int(props["offsets.topic.num.partitions"]) <= 8
    assert int(props["log.cleaner.dedupe.buffer.size"]) <= 32 * 1024 * 1024  # fits the 512 MiB heap
    assert props["offsets.topic.replication.factor"] == "1"


def test_pom_pins_kafka_and_adds_a_logging_backend() -> None:
    pom = localkafka.render_pom()
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert f"<version>{localkafka.KAFKA_VERSION}</version>" in pom
    assert "<artifactId>slf4j-reload4j</artifactId>" in pom
    assert "<packaging>pom</packaging>" in pom
    assert localkafka.DEPENDENCY_PLUGIN.endswith(":3.8.1")  # Maven 3.8.7 would default to 2.8


def test_docker_env_mirrors_the_jar_broker() -> None:
    env = localkafka.docker_env(19092)
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:19092"
    assert env["KAFKA_LISTENERS"] == "PLAINTEXT://:19092,CONTROLLER://:19093"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:19093"
    assert env["KAFKA_NUM_PARTITIONS"] == "8"


def test_cluster_id_looks_like_kafka_uuid() -> None:
    cid = localkafka._cluster_id()
    assert len(cid) == 22 and not cid.startswith("-") and "=" not in cid


def test_status_of_a_free_port_is_not_running(tmp_path: Path) -> None:
    st = localkafka.status(home=tmp_path, port=1)
    assert st == {"running": False, "bootstrap": "127.0.0.1:1", "pid": None, "mode": None}
    assert localkafka.down(home=tmp_path) is False
    assert issubclass(localkafka.BrokerError, SpendSentryError)


@pytest.fixture(scope="module")
def bootstrap() -> str:
    """The shared broker on 127.0.0.1:9092 (started here, and stopped after, only if none runs)."""
    started = not localkafka.status()["running"]
    yield localkafka.up() if started else localkafka.status()["bootstrap"]
    if started:
        localkafka.down()


@pytest.mark.integration
async def test_ensure_topics_creates_plain_and_compacted(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    suffix = uuid.uuid4().hex[:8]
    plain, compact = f"test-plain-{suffix}", f"test-compact-{suffix}"
    await localkafka.ensure_topics_async(bootstrap, {plain: 3, compact: 2}, {compact})
    await localkafka.ensure_topics_async(bootstrap, {plain: 5, compact: 2}, {compact})  # existing: left alone

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # a new topic's metadata can lag its creation on a loaded broker: read it until it settles
        for _ in range(60):
            described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([plain, compact])}
            if described == {plain: 3, compact: 2}:
                break
            await asyncio.sleep(0.5)
        assert described == {plain: 3, compact: 2}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None}) for name in (plain, compact)]
        )
        policy = {res[3]: entry[1] for r in responses for res in r.resources for entry in res[4]}
        assert policy == {plain: "delete", compact: "compact"}
        await admin.delete_topics([plain, compact])
    finally:
        await admin.close()


@pytest.mark.integration
def test_status_reports_the_running_broker(bootstrap: str) -> None:
    st = localkafka.status()
    assert st["running"] is True and st["bootstrap"] == bootstrap
    assert st["mode"] in {"jars", "docker", "external"}
    assert localkafka.up() == bootstrap  # idempotent: reuses the running broker
    with pytest.raises(localkafka.BrokerError, match="not in topics"):
        localkafka.ensure_topics(bootstrap, {"x": 1}, {"y"})


@pytest.mark.integration
async def test_sync_api_works_inside_an_event_loop(bootstrap: str) -> None:
    assert localkafka.status()["running"] is True
    name = f"test-sync-{uuid.uuid4().hex[:8]}"
    localkafka.ensure_topics(bootstrap, {name: 2})
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        assert len((await admin.describe_topics([name]))[0]["partitions"]) == 2
        await admin.delete_topics([name])
    finally:
        await admin.close()


class _Metadata:
    """An admin client whose metadata lists a topic only after ``lag`` requests, and whose
    partitions have no leader for ``leaderless`` more (as a broker right after its start)."""

    def __init__(self, lag: int, leaderless: int) -> None:
        self.lag, self.leaderless, self.requests = lag, leaderless, 0

    async def describe_topics(self, names: list[str]) -> list[dict]:
        self.requests += 1
        if self.requests <= self.lag:
            return [{"topic": n, "error_code": 3, "partitions": []} for n in names]
        leader = -1 if self.requests <= self.lag + self.leaderless else 1
        return [{"topic": n, "error_code": 0, "partitions": [{"partition": 0, "leader": leader},
                                                             {"partition": 1, "leader": leader}]} for n in names]


async def test_created_topics_are_waited_for_until_every_partition_has_a_leader() -> None:
    client = _Metadata(lag=2, leaderless=2)
    await localkafka._until_led(client, {"a-changelog": 2, "b": 2}, timeout=10)
    assert client.requests == 5


async def test_a_topic_that_never_gets_a_leader_is_one_clear_error() -> None:
    with pytest.raises(localkafka.BrokerError, match=r"without a leader .*\['a-changelog'\]"):
        await localkafka._until_led(_Metadata(lag=10**9, leaderless=0), {"a-changelog": 2}, timeout=0.5)
