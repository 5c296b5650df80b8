#!/usr/bin/env python3
"""Fetch, configure, start and stop a local Apache Cassandra 5.0 node or a small cluster.

Standard library only, so that `make` can run it with any python3 and the test helper
(`tests/support/cassandra_node.py`) can import it.

Where the server comes from: Maven Central does not publish the binary tarball for 5.0
(`apache-cassandra-*-bin.tar.gz` stops at 4.0-alpha2 there); the tarball's `lib/` is
`cassandra-all` plus its runtime dependencies, so a small generated pom importing
`cassandra-parent` and depending on `cassandra-all` is resolved with
`maven-dependency-plugin:copy-dependencies`. The Maven repository and the jar folder live
under `.cassandra/` (gitignored): the second start needs no network and no Maven.

Layout (all under `.cassandra/`, wipe with `cassctl.py wipe` or `rm -rf .cassandra/<kind>`):

    m2/                      Maven local repository (download cache)
    lib-<version>/           the server's classpath, marked complete by `.complete`
    single/node1/            the single dev node: conf/, data/, commitlog/, logs/, cassandra.pid
    cluster/node<i>/         node i of the cluster on 127.0.0.<i>
    cluster<b>/node<i>/      the same with CASSANDRA_CLUSTER_BASE=<b> (127.0.0.<b+i-1>)

The single node and cluster node 1 both use 127.0.0.1:7000/9042 by default, so they cannot run
at the same time: starting the cluster stops the single node first. CASSANDRA_CLUSTER_BASE=11
moves the cluster to 127.0.0.11-13, next to a running single node.

Configuration choices (see `render_yaml`):
- one token per node (`num_tokens: 1`, explicit `initial_token`, evenly spaced for a cluster),
  `auto_bootstrap: false`, no wait for gossip to settle, ring delay 5 s: the single node answers
  CQL 6-8 s after launch on an idle 2-core machine;
- `paxos_variant: v2` (5.0 defaults to v1; v2 needs fewer round trips per LWT);
- `commitlog_sync: periodic` (10 s) for these dev/test nodes. A write is acknowledged once it is
  in the commit log's memory-mapped segment, so killing the JVM (kill -9, the fault tests) loses
  nothing; only a crash of the whole machine can lose the last period. Production wants `batch`
  (fsync before acknowledging) or `group`; CASSANDRA_COMMITLOG_SYNC=batch selects it at the next
  start; on this machine it halves the sequential LWT rate (lwt_bench.py measures it).
- AllowAll authenticator/authorizer: loopback dev nodes only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CASSANDRA_VERSION = "5.0.9"  # the one place the server version is pinned
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("CASSANDRA_HOME_DIR", ROOT / ".cassandra")).resolve()
M2 = HOME / "m2"
LIB = HOME / f"lib-{CASSANDRA_VERSION}"

CQL_PORT = 9042
STORAGE_PORT = 7000
# Cluster node i listens on 127.0.0.<CLUSTER_BASE + i - 1>; node 1 is the seed. With the default
# 1 the cluster shares 127.0.0.1 with the single node; CASSANDRA_CLUSTER_BASE=11 (127.0.0.11-13)
# lets both run at once.
CLUSTER_BASE = int(os.environ.get("CASSANDRA_CLUSTER_BASE", "1"))
SINGLE_HEAP = os.environ.get("CASSANDRA_HEAP", "1G")
CLUSTER_HEAP = os.environ.get("CASSANDRA_CLUSTER_HEAP", "512M")
COMMITLOG_SYNC = os.environ.get("CASSANDRA_COMMITLOG_SYNC", "periodic")
START_TIMEOUT = float(os.environ.get("CASSANDRA_START_TIMEOUT", "180"))
STOP_TIMEOUT = float(os.environ.get("CASSANDRA_STOP_TIMEOUT", "60"))
POLL = 0.25

# From Cassandra 5.0 conf/jvm17-server.options (plus two the notes list); a missing one shows
# up as InaccessibleObjectException in logs/system.log at start.
JAVA17_MODULE_FLAGS = [
    *(
        f"--add-exports={m}=ALL-UNNAMED"
        for m in (
            "java.base/jdk.internal.misc",
            "java.base/java.lang.ref",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.management/com.sun.jmx.remote.security",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "jdk.unsupported/sun.misc",
            "jdk.attach/sun.tools.attach",
            "jdk.compiler/com.sun.tools.javac.file",
        )
    ),
    *(
        f"--add-opens={m}=ALL-UNNAMED"
        for m in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "java.base/java.lang",
            "java.base/java.util",
            "java.base/java.nio",
            "jdk.compiler/com.sun.tools.javac",
        )
    ),
]


class CassandraError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[cassandra] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Fetch


POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/cassandra/cassctl.py: the server's runtime classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>payswitch.local</groupId>
  <artifactId>cassandra-server-classpath</artifactId>
  <version>{v}</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.cassandra</groupId>
        <artifactId>cassandra-parent</artifactId>
        <version>{v}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{v}</version>
    </dependency>
  </dependencies>
</project>
"""


def fetch() -> Path:
    """Return the server's lib folder, resolving it with Maven the first time."""
    if (LIB / ".complete").exists():
        return LIB
    if shutil.which("mvn") is None:
        raise CassandraError("mvn not found: install Maven 3.8+ (apt-get install maven)")
    with _lock():
        if (LIB / ".complete").exists():
            return LIB
        log(f"fetching cassandra-all {CASSANDRA_VERSION} and dependencies from Maven Central")
        started = time.monotonic()
        work = HOME / "fetch"
        work.mkdir(parents=True, exist_ok=True)
        (work / "pom.xml").write_text(POM.format(v=CASSANDRA_VERSION))
        tmp = HOME / f"lib-{CASSANDRA_VERSION}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            "mvn",
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(work / "pom.xml"),
            f"-Dmaven.repo.local={M2}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if res.returncode != 0:
            raise CassandraError(f"maven could not resolve the server:\n{res.stdout}{res.stderr}")
        jar = tmp / f"cassandra-all-{CASSANDRA_VERSION}.jar"
        if not jar.exists() or not list(tmp.glob("jamm-*.jar")):
            raise CassandraError(f"maven finished but {jar.name} or jamm is missing in {tmp}")
        shutil.rmtree(LIB, ignore_errors=True)
        tmp.rename(LIB)
        (LIB / ".complete").write_text(CASSANDRA_VERSION + "\n")
        log(f"fetched {len(list(LIB.glob('*.jar')))} jars in {time.monotonic() - started:.1f} s")
        return LIB


# ---------------------------------------------------------------------------------------------
# Nodes


@dataclass(frozen=True)
class Node:
    kind: str  # "single" or "cluster"
    index: int  # 1-based
    size: int  # number of nodes in its cluster (token spacing)
    heap: str

    @property
    def name(self) -> str:
        return f"{self.kind}/node{self.index}"

    @property
    def address(self) -> str:
        return "127.0.0.1" if self.kind == "single" else f"127.0.0.{CLUSTER_BASE + self.index - 1}"

    @property
    def seed(self) -> str:
        return "127.0.0.1" if self.kind == "single" else f"127.0.0.{CLUSTER_BASE}"

    @property
    def jmx_port(self) -> int:
        return 7199 if self.kind == "single" else 7200 + CLUSTER_BASE + self.index - 1

    @property
    def token(self) -> int:
        return -(2**63) + (self.index - 1) * (2**64 // self.size)

    @property
    def dir(self) -> Path:
        return deployment_dir(self.kind) / f"node{self.index}"

    @property
    def pidfile(self) -> Path:
        return self.dir / "cassandra.pid"

    @property
    def system_log(self) -> Path:
        return self.dir / "logs" / "system.log"

    @property
    def stdout_log(self) -> Path:
        return self.dir / "logs" / "stdout.log"


def deployment_dir(kind: str) -> Path:
    """.cassandra/single, .cassandra/cluster, or .cassandra/cluster<base> for a moved cluster
    (its nodes' system tables remember their addresses, so each base keeps its own data)."""
    if kind == "cluster" and CLUSTER_BASE != 1:
        return HOME / f"cluster{CLUSTER_BASE}"
    return HOME / kind


def single_node(heap: str = SINGLE_HEAP) -> Node:
    return Node("single", 1, 1, heap)


def cluster_nodes(size: int = 3, heap: str = CLUSTER_HEAP) -> list[Node]:
    return [Node("cluster", i, size, heap) for i in range(1, size + 1)]


def render_yaml(node: Node, commitlog_sync: str = COMMITLOG_SYNC) -> str:
    d = node.dir
    if commitlog_sync == "periodic":
        sync = "commitlog_sync: periodic\ncommitlog_sync_period: 10000ms"
    elif commitlog_sync == "batch":
        sync = "commitlog_sync: batch"
    else:
        raise CassandraError(f"commitlog_sync must be periodic or batch: {commitlog_sync}")
    return f"""\
# Generated by scripts/cassandra/cassctl.py at every start; edit the script, not this file.
cluster_name: payswitch-{node.kind}
num_tokens: 1
initial_token: {node.token}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
auto_bootstrap: false
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{node.seed}:{STORAGE_PORT}"
listen_address: {node.address}
rpc_address: {node.address}
storage_port: {STORAGE_PORT}
native_transport_port: {CQL_PORT}
start_native_transport: true
data_file_directories:
  - {d / "data"}
commitlog_directory: {d / "commitlog"}
hints_directory: {d / "hints"}
saved_caches_directory: {d / "saved_caches"}
cdc_raw_directory: {d / "cdc_raw"}
{sync}
commitlog_disk_access_mode: legacy
storage_compatibility_mode: NONE
paxos_variant: v2
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
auto_snapshot: false
concurrent_compactors: 1
# At start a node waits until at most one peer is down; when the whole cluster restarts, node 1
# starts alone and would wait the default 10 s for nothing.
block_for_peers_timeout_in_secs: 2
"""


LOGBACK = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/cassandra/cassctl.py. -->
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>{log}</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>{log}.%i</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>20MB</maxFileSize>
    </triggeringPolicy>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %logger{{0}} - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE"/>
  </root>
</configuration>
"""


def java_command(node: Node, lib: Path) -> list[str]:
    conf = node.dir / "conf"
    jamm = sorted(lib.glob("jamm-*.jar"))[0]
    return [
        shutil.which("java") or "java",
        f"-Xms{node.heap}",
        f"-Xmx{node.heap}",
        "-Xss256k",
        "-XX:+UseG1GC",
        "-XX:+ParallelRefProcEnabled",
        "-XX:MaxTenuringThreshold=1",
        "-XX:G1RSetUpdatingPauseTimePercent=5",
        "-XX:MaxGCPauseMillis=300",
        "-XX:InitiatingHeapOccupancyPercent=70",
        "-XX:+CrashOnOutOfMemoryError",
        "-XX:+PerfDisableSharedMem",
        *JAVA17_MODULE_FLAGS,
        f"-javaagent:{jamm}",
        "-Djava.net.preferIPv4Stack=true",
        "-Djdk.attach.allowAttachSelf=true",
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dio.netty.allocator.useCacheForAllThreads=true",
        "-Dio.netty.allocator.maxOrder=11",
        "-Dchronicle.analytics.disable=true",
        f"-Dcassandra.config={(conf / 'cassandra.yaml').as_uri()}",
        f"-Dlogback.configurationFile={(conf / 'logback.xml').as_uri()}",
        f"-Dcassandra.logdir={node.dir / 'logs'}",
        f"-Dcassandra.storagedir={node.dir}",
        f"-Dcassandra.jmx.local.port={node.jmx_port}",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        # A restarting node whose peers are all down waits one ring delay (30 s) for them.
        "-Dcassandra.ring_delay_ms=5000",
        "-Dcassandra-foreground=yes",
        f"-Dpayswitch.node={node.dir}",  # lets `_pid_alive` recognise our own process
        "-cp",
        f"{conf}:{lib}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def write_config(node: Node, commitlog_sync: str = COMMITLOG_SYNC) -> None:
    for sub in ("conf", "data", "commitlog", "hints", "saved_caches", "cdc_raw", "logs"):
        (node.dir / sub).mkdir(parents=True, exist_ok=True)
    (node.dir / "conf" / "cassandra.yaml").write_text(render_yaml(node, commitlog_sync))
    (node.dir / "conf" / "logback.xml").write_text(LOGBACK.format(log=node.system_log))
    (node.dir / "conf" / "heap").write_text(node.heap)


# ---------------------------------------------------------------------------------------------
# Processes

_children: dict[int, subprocess.Popen] = {}


def _read_pid(node: Node) -> int | None:
    try:
        return int(node.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int, node: Node) -> bool:
    """True when pid is a live (not zombie) JVM started for this node's directory."""
    child = _children.get(pid)
    if child is not None:  # started by this process: poll() also reaps it once it exits
        if child.poll() is None:
            return True
        _children.pop(pid, None)
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines()):
        return False
    return f"-Dpayswitch.node={node.dir}".encode() in cmdline


def running_pid(node: Node) -> int | None:
    pid = _read_pid(node)
    return pid if pid is not None and _pid_alive(pid, node) else None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _frame(opcode: int, body: bytes, stream: int) -> bytes:
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    _version, _flags, _stream, opcode, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    return opcode, _recv_exact(sock, length)


def cql_ready(host: str, port: int = CQL_PORT, timeout: float = 2.0) -> bool:
    """True when host:port speaks CQL and answers a query (protocol v4: STARTUP, QUERY)."""
    startup = struct.pack(">H", 1)
    for s in (b"CQL_VERSION", b"3.0.0"):
        startup += struct.pack(">H", len(s)) + s
    query = b"SELECT release_version FROM system.local"
    query_body = struct.pack(">i", len(query)) + query + struct.pack(">HB", 0x0001, 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_frame(0x01, startup, 0))
            if _read_frame(sock)[0] != 0x02:  # READY
                return False
            sock.sendall(_frame(0x07, query_body, 1))
            return _read_frame(sock)[0] == 0x08  # RESULT
    except (OSError, ConnectionError, struct.error):
        return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def log_tail(node: Node, lines: int = 40) -> str:
    out = []
    for path in (node.system_log, node.stdout_log):
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- tail of {path} ---\n" + "\n".join(text))
    return "\n".join(out) or f"(no log under {node.dir / 'logs'})"


def wait_ready(node: Node, pid: int, timeout: float = START_TIMEOUT) -> float:
    """Poll until the node answers CQL; fail early if its JVM exits. Returns seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if cql_ready(node.address):
            return time.monotonic() - started
        if not _pid_alive(pid, node):
            raise CassandraError(f"{node.name} exited during start\n{log_tail(node)}")
        time.sleep(POLL)
    raise CassandraError(
        f"{node.name} did not answer CQL on {node.address}:{CQL_PORT} within {timeout:.0f} s"
        f"\n{log_tail(node)}"
    )


_lock_depth = 0


@contextlib.contextmanager
def _lock():
    """Serialise starts and stops across processes (flock on .cassandra/lock); re-entrant."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    HOME.mkdir(parents=True, exist_ok=True)
    with open(HOME / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
            fcntl.flock(fh, fcntl.LOCK_UN)


def _start(node: Node, timeout: float, commitlog_sync: str) -> float:
    """Start node unless it is already running; return seconds until it answered CQL."""
    pid = running_pid(node)
    if pid is not None:
        waited = wait_ready(node, pid, timeout)
        log(f"{node.name} already running (pid {pid}) on {node.address}:{CQL_PORT}")
        return waited
    if _port_open(node.address, CQL_PORT) or _port_open(node.address, STORAGE_PORT):
        raise CassandraError(
            f"{node.address}:{CQL_PORT}/{STORAGE_PORT} is in use by a process that is not "
            f"{node.name}; stop it first (`cassctl.py status` shows what runs)"
        )
    lib = fetch()
    write_config(node, commitlog_sync)
    cmd = java_command(node, lib)
    with open(node.stdout_log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=node.dir,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    node.pidfile.write_text(f"{proc.pid}\n")
    log(f"starting {node.name} (pid {proc.pid}, heap {node.heap}) on {node.address}")
    waited = wait_ready(node, proc.pid, timeout)
    log(f"{node.name} answers CQL on {node.address}:{CQL_PORT} after {waited:.1f} s")
    return waited


def start(node: Node, timeout: float = START_TIMEOUT, commitlog_sync: str = COMMITLOG_SYNC):
    with _lock():
        return _start(node, timeout, commitlog_sync)


def _stop(nodes: list[Node], hard: bool = False, timeout: float = STOP_TIMEOUT) -> bool:
    """Signal every running node at once, then wait for all of them to exit.

    SIGTERM lets Cassandra drain (flush memtables, announce shutdown to peers), SIGKILL follows
    after timeout; hard=True sends SIGKILL at once. Returns whether anything was running.
    """
    sig = signal.SIGKILL if hard else signal.SIGTERM
    started = time.monotonic()
    pending = {}
    for node in nodes:
        pid = running_pid(node)
        if pid is None:
            node.pidfile.unlink(missing_ok=True)
            continue
        log(f"stopping {node.name} (pid {pid}) with {sig.name}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        pending[node] = pid
    was_running = bool(pending)
    killed = hard
    while pending:
        for node, pid in list(pending.items()):
            if not _pid_alive(pid, node):
                node.pidfile.unlink(missing_ok=True)
                log(f"{node.name} stopped after {time.monotonic() - started:.1f} s")
                del pending[node]
        if not pending:
            break
        elapsed = time.monotonic() - started
        if not killed and elapsed > timeout:
            log(f"{', '.join(n.name for n in pending)} alive after {timeout:.0f} s: SIGKILL")
            for pid in pending.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed, started, timeout = True, time.monotonic(), 30
        elif killed and elapsed > timeout:
            raise CassandraError(f"pids {list(pending.values())} survive SIGKILL")
        time.sleep(POLL / 2)
    return was_running


def stop(node: Node, hard: bool = False, timeout: float = STOP_TIMEOUT) -> bool:
    with _lock():
        return _stop([node], hard, timeout)


# ---------------------------------------------------------------------------------------------
# Single node and cluster


def up(heap: str = SINGLE_HEAP, timeout: float = START_TIMEOUT) -> str:
    """Ensure a node answers CQL on 127.0.0.1:9042 and return that contact point.

    Reuses whatever already answers there (our single node, cluster node 1, or a node someone
    else started); otherwise starts the single node.
    """
    node = single_node(heap)
    with _lock():
        if running_pid(node) is None and cql_ready(node.address):
            log(f"reusing the Cassandra that answers on {node.address}:{CQL_PORT}")
        else:
            _start(node, timeout, COMMITLOG_SYNC)
    return node.address


def down() -> bool:
    return stop(single_node())


def nodetool(node: Node, *args: str, timeout: float = 60) -> str:
    """Run nodetool from the server jars against node's local JMX port; return stdout."""
    lib = fetch()
    tools_log = node.dir / "conf" / "logback-tools.xml"
    if not tools_log.exists():
        tools_log.parent.mkdir(parents=True, exist_ok=True)
        tools_log.write_text('<configuration><root level="OFF"/></configuration>\n')
    cmd = [
        shutil.which("java") or "java",
        "-Xmx128m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        *JAVA17_MODULE_FLAGS,
        f"-Duser.home={HOME / 'tools-home'}",  # nodetool keeps its history in ~/.cassandra
        f"-Dlogback.configurationFile={tools_log.as_uri()}",
        "-cp",
        f"{lib}/*",
        "org.apache.cassandra.tools.NodeTool",
        "-h",
        "127.0.0.1",
        "-p",
        str(node.jmx_port),
        *args,
    ]
    res = subprocess.run(  # noqa: S603
        cmd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if res.returncode != 0:
        raise CassandraError(f"nodetool {' '.join(args)} on {node.name}: {res.stderr.strip()}")
    return res.stdout


def ring_view(node: Node) -> dict[str, str]:
    """{address: 'UN' | 'DN' | ...} as `nodetool status` on node sees the cluster."""
    view = {}
    for line in nodetool(node, "status").splitlines():
        parts = line.split()
        if len(parts) > 2 and len(parts[0]) == 2 and parts[0][0] in "UD":
            view[parts[1]] = parts[0]
    return view


def wait_all_up(nodes: list[Node], timeout: float = START_TIMEOUT) -> float:
    """Poll until each node sees every node Up/Normal (`nodetool status`); seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    want = {n.address for n in nodes}

    def view(n: Node) -> dict[str, str]:
        try:
            return ring_view(n)
        except (CassandraError, subprocess.TimeoutExpired) as exc:
            return {"error": str(exc)}

    with ThreadPoolExecutor(len(nodes)) as pool:
        while True:
            views = dict(zip([n.name for n in nodes], pool.map(view, nodes), strict=True))
            if all({a for a, s in v.items() if s == "UN"} >= want for v in views.values()):
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise CassandraError(f"cluster not all Up/Normal after {timeout:.0f} s: {views}")
            time.sleep(POLL * 4)


def cluster_up(size: int = 3, heap: str = CLUSTER_HEAP, timeout: float = START_TIMEOUT):
    """Start (or reuse) the cluster, seed first, one node after the other; wait all Up."""
    nodes = cluster_nodes(size, heap)
    with _lock():
        single = single_node()
        if nodes[0].address == single.address and _stop([single]):
            log(f"stopped the single node: cluster node 1 needs {single.address}")
        for node in nodes:
            _start(node, timeout, COMMITLOG_SYNC)
    waited = wait_all_up(nodes, timeout)
    log(f"all {size} nodes Up/Normal ({waited:.1f} s after the last start)")
    return [n.address for n in nodes]


def start_cluster_node(index: int, size: int = 3, timeout: float = START_TIMEOUT) -> None:
    """(Re)start cluster node index and wait until all running nodes see each other Up.

    The node gets the heap it had at its last start (`cluster-up --heap`), if any.
    """
    nodes = cluster_nodes(size)
    node = nodes[index - 1]
    with contextlib.suppress(OSError):
        node = Node(node.kind, node.index, node.size, (node.dir / "conf" / "heap").read_text())
    start(node, timeout)
    wait_all_up([n for n in nodes if running_pid(n) is not None], timeout)


def cluster_down(size: int = 3) -> None:
    """Stop every cluster node (all drain in parallel)."""
    with _lock():
        _stop(cluster_nodes(size))


def wipe(kind: str) -> None:
    kinds = ["single", "cluster"] if kind == "all" else [kind]
    with _lock():
        for k in kinds:
            base = deployment_dir(k)
            for pidfile in base.glob("node*/cassandra.pid"):
                node = Node(k, int(pidfile.parent.name[4:]), 1, "")
                if running_pid(node) is not None:
                    raise CassandraError(f"{node.name} is running: stop it before wiping")
            shutil.rmtree(base, ignore_errors=True)
            log(f"wiped {base}")


def status() -> list[str]:
    lines = []
    for node in [single_node(), *cluster_nodes()]:
        pid = running_pid(node)
        if pid is None and not node.dir.exists():
            continue
        state = "answers CQL" if pid and cql_ready(node.address) else "not answering"
        rss = ""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines() if pid else []:
                if line.startswith("VmRSS:"):
                    rss = f", RSS {int(line.split()[1]) // 1024} MiB"
        where = f"pid {pid}, {state}{rss}" if pid else "stopped"
        lines.append(f"{node.name:15} {node.address:10} {where}")
    return lines


# ---------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="download the server jars into .cassandra/ (cached)")
    s = sub.add_parser("up", help="start (or reuse) the single node on 127.0.0.1:9042")
    s.add_argument("--heap", default=SINGLE_HEAP)
    sub.add_parser("down", help="stop the single node")
    s = sub.add_parser("cluster-up", help="start (or reuse) the 3-node cluster")
    s.add_argument("--heap", default=CLUSTER_HEAP)
    sub.add_parser("cluster-down", help="stop all cluster nodes")
    s = sub.add_parser("start-node", help="start cluster node i")
    s.add_argument("index", type=int)
    s = sub.add_parser("stop-node", help="stop cluster node i (SIGTERM, or SIGKILL with --hard)")
    s.add_argument("index", type=int)
    s.add_argument("--hard", action="store_true")
    s = sub.add_parser("nodetool", help="run nodetool against a node: nodetool single|1|2|3 ARGS")
    s.add_argument("target")
    s.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("status", help="show which nodes run")
    s = sub.add_parser("wipe", help="delete a stopped deployment's data")
    s.add_argument("kind", choices=["single", "cluster", "all"])
    a = p.parse_args(argv)
    try:
        if a.cmd == "fetch":
            print(fetch())
        elif a.cmd == "up":
            print(up(a.heap))
        elif a.cmd == "down":
            down()
        elif a.cmd == "cluster-up":
            print(",".join(cluster_up(heap=a.heap)))
        elif a.cmd == "cluster-down":
            cluster_down()
        elif a.cmd == "start-node":
            start_cluster_node(a.index)
        elif a.cmd == "stop-node":
            stop(cluster_nodes()[a.index - 1], hard=a.hard)
        elif a.cmd == "nodetool":
            node = single_node() if a.target == "single" else cluster_nodes()[int(a.target) - 1]
            print(nodetool(node, *a.args), end="")
        elif a.cmd == "status":
            print("\n".join(status()) or "no Cassandra nodes under " + str(HOME))
        elif a.cmd == "wipe":
            wipe(a.kind)
    except CassandraError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
