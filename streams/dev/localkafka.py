"""A real single-node Apache Kafka (KRaft) on 127.0.0.1 for development and tests.

``up()`` reuses a broker that already answers, else runs ``apache/kafka`` through Docker when a
Docker engine answers, else provisions Kafka's own jars from Maven Central into ``home/lib``
(``mvn`` + ``maven-dependency-plugin``, cached), formats ``home/data`` once and starts
``java ... kafka.Kafka`` detached. ``down()`` stops what ``up()`` started.

Recipe notes (checked end to end with Kafka 3.9.1, OpenJDK 17, Maven 3.8.7):

* ``kafka_2.13`` does not bring a logging backend (3.9 declares reload4j ``compileOnly``), so the
  pom adds ``slf4j-reload4j``; the log config is passed as ``-Dlog4j.configuration=file:...``.
* Maven 3.8.7 defaults to dependency-plugin 2.8: the plugin is pinned on the command line.
* Static ``controller.quorum.voters`` ⇒ ``kafka.tools.StorageTool format`` without ``--standalone``.
* ``log.cleaner.dedupe.buffer.size`` is shrunk so the cleaner fits a 512 MiB heap (faust
  changelogs are compacted, so the cleaner stays on).
* ``broker.session.timeout.ms`` is lowered: after an unclean stop (SIGKILL) the restarted
  broker is refused (DUPLICATE_BROKER_REGISTRATION) until its old session expires: ≈14 s → ≈4.7 s.
* Measured on 2 cores: cold ``up()`` (empty ``~/.m2``) ≈5.7 s, warm ≈1.45 s, ``down()`` ≈0.3 s.
  Serial GC is ready ≈0.2 s sooner than G1; ``-XX:TieredStopAtLevel=1`` saves another ≈0.2 s
  but costs steady-state throughput, so it is left out. Cluster ids are made in Python
  (base64url uuid4, as ``StorageTool random-uuid``), saving a JVM start.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from schemas.errors import SpendSentryError

__all__ = [
    "DEFAULT_HOME",
    "KAFKA_VERSION",
    "BrokerError",
    "up",
    "down",
    "status",
    "ensure_topics",
    "ensure_topics_async",
    "broker_settings",
    "render_server_properties",
    "render_pom",
    "docker_env",
]

DEFAULT_HOME = Path(os.environ.get("SPENDSENTRY_KAFKA_HOME", ".kafka"))

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
SLF4J_BACKEND = ("org.slf4j", "slf4j-reload4j", "1.7.36")
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
DOCKER_IMAGE = f"apache/kafka:{KAFKA_VERSION}"
JVM_OPTS = ("-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
HOST = "127.0.0.1"

_LOG4J = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
"""

_POM = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by spendsentry.streams.dev.localkafka: the runtime classpath of a Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.spendsentry</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>{log_group}</groupId>
      <artifactId>{log_artifact}</artifactId>
      <version>{log_version}</version>
    </dependency>
  </dependencies>
</project>
"""

_LIB_DONE = ".complete"  # marker written into home/lib after a successful copy-dependencies
_CONTAINER_FILE = "docker.container"
log = logging.getLogger(__name__)
_T = TypeVar("_T")


class BrokerError(SpendSentryError):
    """The local broker could not be provisioned, started, reached or stopped.

    ``log_tail`` holds the last lines of the broker's log when there is one.
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(message + (f"\n--- log (tail) ---\n{log_tail}" if log_tail else ""))


# ---------------------------------------------------------------- pure rendering


def broker_settings(port: int, data_dir: Path | str) -> dict[str, str]:
    """The broker's ``server.properties`` as a dict: PLAINTEXT on ``port``, controller on ``port+1``."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{port + 1}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{port + 1}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "8",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # after an unclean stop the controller refuses the broker's re-registration
        # (DUPLICATE_BROKER_REGISTRATION) until the old session expires (9 s by default; its retry
        # backoff doubles from 0.1 s, so 3 s lets the retry at ≈3.2 s succeed)
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "1000",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "2",
    }


def render_server_properties(home: Path, port: int) -> str:
    """Text of ``home/server.properties`` for a broker on ``127.0.0.1:port`` (data in ``home/data``)."""
    data_dir = Path(home).resolve() / "data"
    lines = ["# Written by streams.dev.localkafka; rewritten on every up()."]
    lines += [f"{key}={value}" for key, value in broker_settings(port, data_dir).items()]
    return "\n".join(lines) + "\n"


def render_pom(kafka_version: str = KAFKA_VERSION) -> str:
    """Text of ``home/kafka-pom.xml``: kafka_2.13 plus the slf4j backend it lacks."""
    group, artifact, version = SLF4J_BACKEND
    return _POM.format(
        scala=SCALA_VERSION, kafka=kafka_version, log_group=group, log_artifact=artifact, log_version=version
    )


def docker_env(port: int) -> dict[str, str]:
    """``KAFKA_*`` variables that configure the apache/kafka image like the jar broker."""
    settings = broker_settings(port, "/var/lib/kafka/data")
    settings.update(
        {
            # same port inside and out: the broker reaches itself at its advertised address
            "listeners": f"PLAINTEXT://:{port},CONTROLLER://:{port + 1}",
            "controller.quorum.voters": f"1@localhost:{port + 1}",
        }
    )
    env = {"KAFKA_" + key.upper().replace(".", "_"): value for key, value in settings.items()}
    env["KAFKA_HEAP_OPTS"] = "-Xms256m -Xmx512m"
    return env


def _cluster_id() -> str:
    """A Kafka cluster id (base64url uuid, as ``StorageTool random-uuid`` prints) without a JVM start."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


# ---------------------------------------------------------------- probes


def _port_open(port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=timeout):
        return True
    return False


async def _answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """Whether a Kafka broker at ``bootstrap`` answers a metadata request (lists topics)."""
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.start(), timeout)
        await asyncio.wait_for(client.list_topics(), timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion, also when called from code that has an event loop running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _broker_answers(port: int, timeout: float = 5.0) -> bool:
    return _port_open(port) and _run(_answers(f"{HOST}:{port}", timeout))


def _tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# ---------------------------------------------------------------- processes


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of ours is reaped and counts as gone)."""
    with contextlib.suppress(ChildProcessError, OSError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _cmdline(pid: int) -> list[str]:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    return []


def _is_our_broker(pid: int, home: Path) -> bool:
    args = _cmdline(pid)
    return "kafka.Kafka" in args and str(Path(home).resolve() / "server.properties") in args


def _read_pid(home: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int((Path(home) / "kafka.pid").read_text().strip())
        if _alive(pid) and _is_our_broker(pid, home):
            return pid
    return None


def _brokers_of(home: Path) -> set[int]:
    """Every live ``kafka.Kafka`` started on ``home``'s server.properties (pid file or not)."""
    pids = {pid} if (pid := _read_pid(home)) else set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_our_broker(int(entry.name), home) and _alive(int(entry.name)):
            pids.add(int(entry.name))
    return pids


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # started in its own session: take its whole group
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise BrokerError("java not found (install OpenJDK 17 or set JAVA_HOME)")
    return java


def _classpath(home: Path) -> str:
    return str(Path(home).resolve() / "lib" / "*")


# ---------------------------------------------------------------- docker


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode == 0
    return False


def _container(home: Path) -> str | None:
    with contextlib.suppress(OSError):
        return (Path(home) / _CONTAINER_FILE).read_text().strip() or None
    return None


def _up_docker(home: Path, port: int, deadline: float) -> None:
    name = f"spendsentry-kafka-{port}"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    env_args = [arg for key, value in docker_env(port).items() for arg in ("-e", f"{key}={value}")]
    run = subprocess.run(
        ["docker", "run", "-d", "--name", name, "-p", f"{HOST}:{port}:{port}", *env_args, DOCKER_IMAGE],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise BrokerError(f"docker run {DOCKER_IMAGE} failed", run.stderr[-4000:])
    (home / _CONTAINER_FILE).write_text(name + "\n")
    while time.monotonic() < deadline:
        if _broker_answers(port, timeout=2.0):
            return
        time.sleep(0.5)
    logs = subprocess.run(["docker", "logs", "--tail", "40", name], capture_output=True, text=True)
    raise BrokerError(f"kafka container {name} not ready on {HOST}:{port}", logs.stdout + logs.stderr)


# ---------------------------------------------------------------- jars


def _provision_jars(home: Path, deadline: float) -> None:
    """Download the broker's runtime jars into ``home/lib`` unless a complete copy is there."""
    lib = home / "lib"
    if (lib / _LIB_DONE).exists():
        return
    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError("mvn not found: Maven is needed once to fetch Kafka's jars from Maven Central")
    shutil.rmtree(lib, ignore_errors=True)
    pom = home / "kafka-pom.xml"
    pom.write_text(render_pom())
    cmd = [
        mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom), f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={lib}",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            cmd, cwd=home, capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic())
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError("mvn timed out fetching Kafka's jars") from exc
    if done.returncode != 0 or not (lib / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").exists():
        raise BrokerError("mvn could not fetch Kafka's jars", (done.stdout + done.stderr)[-4000:])
    (lib / _LIB_DONE).write_text(KAFKA_VERSION + "\n")


def _write_configs(home: Path, port: int) -> None:
    (home / "server.properties").write_text(render_server_properties(home, port))
    (home / "log4j.properties").write_text(_LOG4J)


def _log_opt(home: Path) -> str:
    return f"-Dlog4j.configuration=file:{(home / 'log4j.properties').resolve()}"


def _format_storage(home: Path) -> None:
    """Format ``home/data`` once (``meta.properties`` marks a formatted directory)."""
    if (home / "data" / "meta.properties").exists():
        return
    cmd = [
        _java(), _log_opt(home), "-cp", _classpath(home), "kafka.tools.StorageTool", "format",
        "-t", _cluster_id(), "-c", str((home / "server.properties").resolve()), "--ignore-formatted",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BrokerError("kafka StorageTool format failed", (done.stdout + done.stderr)[-4000:])


def _start_jvm(home: Path) -> subprocess.Popen[bytes]:
    props = str((home / "server.properties").resolve())
    cmd = [_java(), *JVM_OPTS, _log_opt(home), "-cp", _classpath(home), "kafka.Kafka", props]
    with open(home / "kafka.log", "ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=home, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    (home / "kafka.pid").write_text(f"{proc.pid}\n")
    return proc


def _up_jars(home: Path, port: int, deadline: float) -> None:
    _provision_jars(home, deadline)
    _write_configs(home, port)
    _format_storage(home)
    if _port_open(port) or _port_open(port + 1):
        raise BrokerError(f"{HOST}:{port} or :{port + 1} is taken by something that is not a Kafka broker")
    proc = _start_jvm(home)
    logfile = home / "kafka.log"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (home / "kafka.pid").unlink(missing_ok=True)
            raise BrokerError(f"kafka exited with code {proc.returncode} while starting", _tail(logfile))
        if _broker_answers(port, timeout=2.0):
            _CHILDREN[proc.pid] = proc  # keep the handle: no "still running" warning, reaped by down()
            return
        time.sleep(0.2)
    down(home)
    raise BrokerError(f"kafka not ready on {HOST}:{port} after the timeout", _tail(logfile))


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# ---------------------------------------------------------------- public API


def up(home: Path = DEFAULT_HOME, port: int = 9092, timeout: float = 180.0) -> str:
    """Ensure a Kafka broker answers on 127.0.0.1:``port``; return its bootstrap ``host:port``.

    Reuses a broker that already answers; else Docker (when an engine answers) or the jar broker
    kept in ``home``. Raises :class:`BrokerError` (with the log tail) on failure or timeout.
    """
    bootstrap = f"{HOST}:{port}"
    deadline = time.monotonic() + timeout
    if _broker_answers(port):
        return bootstrap
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if _read_pid(home):  # ours, still starting (or wedged): wait for it before starting another
        while time.monotonic() < deadline:
            if _broker_answers(port, timeout=2.0):
                return bootstrap
            if not _read_pid(home):
                break
            time.sleep(0.5)
        else:
            raise BrokerError(f"kafka (pid file in {home}) never answered on {bootstrap}", _tail(home / "kafka.log"))
    if _docker_available():
        _up_docker(home, port, deadline)
    else:
        _up_jars(home, port, deadline)
    log.info("kafka ready on %s", bootstrap)
    return bootstrap


def down(home: Path = DEFAULT_HOME, timeout: float = 30.0) -> bool:
    """Stop the broker ``up()`` started from ``home`` (SIGTERM, SIGKILL after ``timeout``).

    Returns whether something was stopped. Leaves no broker of this home running.
    """
    home = Path(home).resolve()
    stopped = False
    container = _container(home)
    if container:
        done = subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        stopped = done.returncode == 0
        (home / _CONTAINER_FILE).unlink(missing_ok=True)
    pids = _brokers_of(home)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < kill_deadline:
        time.sleep(0.05)
    for pid in pids:
        if (proc := _CHILDREN.pop(pid, None)) is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
    if still := [pid for pid in pids if _alive(pid)]:
        raise BrokerError(f"kafka pid(s) {still} survived SIGKILL", _tail(home / "kafka.log"))
    (home / "kafka.pid").unlink(missing_ok=True)
    return stopped or bool(pids)


def status(home: Path = DEFAULT_HOME, port: int = 9092) -> dict:
    """``{"running", "bootstrap", "pid", "mode"}`` of the broker on 127.0.0.1:``port``.

    ``mode`` is ``"jars"`` or ``"docker"`` for a broker this module started from ``home``,
    ``"external"`` for any other broker answering on the port, ``None`` when none answers.
    """
    home = Path(home).resolve()
    running = _broker_answers(port, timeout=3.0)
    pid = _read_pid(home)
    mode: str | None = None
    if running:
        mode = "jars" if pid else "docker" if _container(home) else "external"
    return {"running": running, "bootstrap": f"{HOST}:{port}", "pid": pid, "mode": mode}


async def ensure_topics_async(
    bootstrap: str,
    topics: dict[str, int],
    compacted: set[str] = frozenset(),
    *,
    replication: int = 1,
    client_options: dict | None = None,
    metadata_timeout: float = 30.0,
) -> None:
    """Create the missing ``topics`` (name → partitions); ``compacted`` ones compacted; return
    once every partition of every one of them has a leader (:class:`BrokerError` after
    ``metadata_timeout``).

    Topics that exist are left alone, whatever their settings. ``client_options`` carries the
    aiokafka security settings (SASL/SSL) for production brokers.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, for_code

    if unknown := set(compacted) - set(topics):
        raise BrokerError(f"compacted topics {sorted(unknown)} are not in topics")
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **(client_options or {}))
    try:
        await client.start()
    except KafkaConnectionError as exc:
        await client.close()
        raise BrokerError(f"cannot reach Kafka at {bootstrap} ({exc}); is it running? (`spendsentry kafka up` "
                          "starts a local one)") from exc
    try:
        existing = set(await client.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
            )
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            response = await client.create_topics(missing, timeout_ms=15000)
            errors = []
            for name, code, *rest in response.topic_errors:
                if code and code != TopicAlreadyExistsError.errno:
                    errors.append(f"{name}: {for_code(code).__name__} {rest[0] if rest else ''}".strip())
            if errors:
                raise BrokerError("could not create topics: " + "; ".join(errors))
        # existing topics too: right after a broker restart their partitions can be leaderless
        await _until_led(client, {name: next((t.num_partitions for t in missing if t.name == name), 1)
                                  for name in topics}, timeout=metadata_timeout)
    finally:
        await client.close()


async def _until_led(client: Any, topics: dict[str, int], timeout: float) -> None:
    """Wait until the broker's metadata lists at least ``topics[name]`` partitions of each topic,
    every one with a leader.

    A topic is created before its partitions have leaders; a Faust worker whose first metadata
    request comes in between logs "not found in cluster metadata", ignores the topic, and its
    table recovery never completes (seen right after a broker start: the demo waited 300 s)."""
    deadline = time.monotonic() + timeout
    while True:
        described = await client.describe_topics(list(topics))
        led = {t["topic"] for t in described if not t["error_code"] and len(t["partitions"]) >= topics[t["topic"]]
               and all(p["leader"] >= 0 for p in t["partitions"])}
        if led >= set(topics):
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topics without a leader {timeout:g}s after their creation: "
                              f"{sorted(set(topics) - led)}")
        await asyncio.sleep(0.2)


def ensure_topics(
    bootstrap: str,
    topics: dict[str, int],
    compacted: set[str] = frozenset(),
    *,
    replication: int = 1,
    client_options: dict | None = None,
) -> None:
    """Synchronous :func:`ensure_topics_async` (runs its own event loop)."""
    _run(ensure_topics_async(bootstrap, topics, compacted, replication=replication, client_options=client_options))
