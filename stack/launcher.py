"""``payswitch-stack``: the whole simulated world as processes, and the same as a test API.

Start order is issuers, then schemes, then acquirers, then the switch; each tier starts in
parallel and must report SERVING on gRPC health before the next one starts, so nobody calls a
node that is not there yet. Every child runs in its own session (a Ctrl-C in the terminal
reaches only the launcher, which then stops the children in reverse order: SIGTERM, then
SIGKILL after a timeout). Each child's output (stdout and stderr) goes to
``<run-dir>/<node>.log`` and, on the command line, also to stdout prefixed with ``[node-id] ``.

Issuer books live in ``<run-dir>/books``, so an issuer killed and restarted keeps its books.
With ``[switch] tls`` or ``[network] tls`` the launcher makes the certificates in
``<run-dir>/certs`` (``payswitch.certs``, idempotent; the CA keys in ``<run-dir>/ca``, which no
child is given), hands each child only its own folder (``certs/switch``, ``certs/nodes/<id>``),
probes health with the probe certificate (switch) or the network operator's (nodes), and gives
clients their credentials (``terminal_credentials``, ``admin_credentials``,
``operator_credentials``, ``node_credentials``). Switches 2..n get their own free admin and
metrics ports.
Blocking by design: the launcher and the test helpers are plain threads, never an event loop
(async tests call ``Stack`` methods through ``asyncio.to_thread``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hsm.config import hsm_home, pin_path
from payswitch import startgate, tls, tracing
from payswitch.certs import CertDir, make_certs
from payswitch.process import PARENT_PID_ENV, connect_address, open_private_log, private_files
from payswitch.world.ports import free_ports, release
from payswitch.world.topology import (
    Topology,
    TopologyError,
    all_nodes,
    load,
    network_identities,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

_HEALTH_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
]
_POLL_S = 0.05
_SECRET_ENV = frozenset({"PAYSWITCH_HSM_PIN", "PAYSWITCH_HSM_SO_PIN"})


class StackError(RuntimeError):
    """A child could not be started or did not become ready; the message names its log."""


def store_url(store: str, run_dir: Path) -> str:
    """``sqlite`` means ``sqlite:///<run-dir>/switch.db``; anything else is passed on as is."""
    return f"sqlite:///{run_dir / 'switch.db'}" if store == "sqlite" else store


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


class _Output:
    """Copies one child's output to its log file and, if asked, to our stdout with a prefix."""

    _stdout_lock = threading.Lock()

    def __init__(self, node_id: str, stream: IO[bytes], log_path: Path, echo: bool) -> None:
        self._prefix = f"[{node_id}] ".encode()
        self._stream = stream
        self._log_path = log_path
        self._echo = echo
        self.thread = threading.Thread(target=self._pump, name=f"out-{node_id}", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        with open_private_log(self._log_path) as log:
            for line in iter(self._stream.readline, b""):
                log.write(line)
                if self._echo:
                    try:
                        with self._stdout_lock:
                            sys.stdout.buffer.write(self._prefix + line)
                            sys.stdout.buffer.flush()
                    except (OSError, ValueError):
                        # Our stdout is gone (closed pipe): keep draining the child into its
                        # log, or it would block on a full pipe.
                        self._echo = False
        self._stream.close()


@dataclass
class _Child:
    node_id: str
    kind: str  # issuer | scheme | acquirer | switch
    listen: str
    argv: list[str]
    log_path: Path
    admin_listen: str = ""
    metrics_listen: str = ""
    proc: subprocess.Popen[bytes] | None = None
    output: _Output | None = None
    reported_exit: bool = field(default=False)
    held: bool = False  # started ahead, waiting for its go (payswitch/startgate.py)
    # Its successor, started held while it still runs (``prestart``): (process, output).
    standby: tuple[subprocess.Popen[bytes], _Output] | None = None


class Stack:
    """The simulated network (and optionally the switch) as child processes.

    ``topology`` is a TOML file; use ``payswitch.world.ports.with_free_ports`` and
    ``payswitch.world.ports.write_topology`` to make one on free ports for a test.
    """

    def __init__(
        self,
        topology: str | Path,
        run_dir: str | Path,
        *,
        store: str = "sqlite",
        switch: bool = True,
        switches: int = 1,
        seed: int | None = None,
        echo: bool = False,
        ready_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        log_level: str = "info",
        python: str = sys.executable,
    ) -> None:
        self.topology_path = Path(topology).resolve()
        self.store_url = store_url(store, Path(run_dir).resolve())
        self.topology: Topology = load(self.topology_path)
        self.run_dir = Path(run_dir).resolve()
        self.books_dir = self.run_dir / "books"
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._echo = echo
        self._env = self._child_env()
        # Spans ([tracing] on): one file per process in <run-dir>/traces (payswitch-trace).
        self._env[tracing.TRACE_DIR_ENV] = str(self.run_dir / "traces")
        self.tls = self.topology.switch.tls
        self.network_tls = self.topology.network.tls
        self.certs_dir = self.run_dir / "certs"
        self._children: dict[str, _Child] = {}
        for kind, node_id, listen in all_nodes(self.topology):
            argv = [python, "-m", "stack.node", "--topology", str(self.topology_path)]
            argv += ["--id", node_id, "--books-dir", str(self.books_dir)]
            if self.network_tls:
                argv += ["--certs-dir", str(CertDir(self.certs_dir).node_dir(node_id).root)]
            argv += ["--log-level", log_level]
            if seed is not None:
                argv += ["--seed", str(seed)]
            if kind in ("acquirer", "issuer"):
                argv += ["--hsm-pin-file", str(pin_path(hsm_home(), node_id))]
            self._children[node_id] = _Child(
                node_id, kind, listen, argv, self.run_dir / f"{node_id}.log"
            )
        if switch:
            self._add_switches(switches, store, log_level, python)

    def _add_switches(self, count: int, store: str, log_level: str, python: str) -> None:
        """Switch 1 on the topology's address; switches 2..count (ids ``<id>-2`` ...) on free
        ports of the same host, all on one store, which must then be a shared one."""
        if count < 1:
            raise ValueError("switches must be >= 1")
        if count > 1 and store_url(store, self.run_dir).startswith("sqlite:"):
            raise ValueError("the SQLite store serves one switch process: use a cassandra:// store")
        sw = self.topology.switch
        host = sw.listen.rpartition(":")[0]
        ports = free_ports(3 * (count - 1))
        for i in range(1, count + 1):
            node_id = sw.id if i == 1 else f"{sw.id}-{i}"
            argv = [python, "-m", "switch.app.main", "--topology", str(self.topology_path)]
            argv += ["--store", store_url(store, self.run_dir), "--log-level", log_level]
            if self.tls or self.network_tls:
                argv += ["--certs-dir", str(CertDir(self.certs_dir).switch_dir.root)]
            argv += ["--hsm-pin-file", str(pin_path(hsm_home(), "switch"))]
            listen, admin, metrics = sw.listen, sw.admin_listen, sw.metrics_listen
            if i > 1:
                listen = f"{host}:{ports.pop()}"
                admin = f"{host}:{ports.pop()}" if admin else ""
                metrics = f"{host}:{ports.pop()}" if metrics else ""
                argv += ["--listen", listen, "--admin-listen", admin]
                argv += ["--metrics-listen", metrics]
            self._children[node_id] = _Child(
                node_id, "switch", listen, argv, self.run_dir / f"{node_id}.log", admin, metrics
            )

    @property
    def switch_ids(self) -> list[str]:
        """The switch processes' ids (one unless ``switches`` > 1)."""
        return [c.node_id for c in self._children.values() if c.kind == "switch"]

    @staticmethod
    def _child_env() -> dict[str, str]:
        """Our environment, less any HSM PIN: each child reads its own party's PIN file, named
        on its command line (a PIN in the environment would reach every child)."""
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
        env["PYTHONUNBUFFERED"] = "1"
        env[PARENT_PID_ENV] = str(os.getpid())  # nodes stop if the launcher dies
        return env

    # -- queries -------------------------------------------------------------------------

    @property
    def node_ids(self) -> list[str]:
        """Every child's id, in start order."""
        return list(self._children)

    def _child(self, node_id: str) -> _Child:
        try:
            return self._children[node_id]
        except KeyError:
            raise StackError(f"no node {node_id!r} in this stack") from None

    def address(self, node_id: str) -> str:
        """``host:port`` to dial the node at."""
        return connect_address(self._child(node_id).listen)

    def admin_address(self, switch_id: str | None = None) -> str:
        """``host:port`` of a switch's AdminService (the first switch by default)."""
        child = self._child(switch_id or self.topology.switch.id)
        if not child.admin_listen:
            raise StackError(f"{child.node_id} has no admin port ([switch] admin_listen)")
        return connect_address(child.admin_listen)

    def metrics_address(self, switch_id: str | None = None) -> str:
        """``host:port`` of a switch's /metrics (the first switch by default)."""
        child = self._child(switch_id or self.topology.switch.id)
        if not child.metrics_listen:
            raise StackError(f"{child.node_id} has no metrics port ([switch] metrics_listen)")
        return connect_address(child.metrics_listen)

    def terminal_credentials(self, terminal_id: str) -> grpc.ChannelCredentials | None:
        """What terminal ``terminal_id`` dials the switch with; None when TLS is off."""
        if not self.tls:
            return None
        return tls.terminal_credentials(self.certs_dir, terminal_id)

    def admin_credentials(self) -> grpc.ChannelCredentials | None:
        """The operator's credentials for the admin port; None when TLS is off."""
        if not self.tls:
            return None
        return tls.admin_credentials(self.certs_dir)

    def operator_credentials(self) -> grpc.ChannelCredentials | None:
        """The network operator's (fault control, issuer books, node health); None in plaintext."""
        if not self.network_tls:
            return None
        return tls.operator_credentials(self.certs_dir)

    def node_credentials(self, node_id: str) -> grpc.ChannelCredentials | None:
        """Node ``node_id``'s own network identity (a test impersonating it); None in plaintext."""
        if not self.network_tls:
            return None
        kinds = {i: k for k, i in network_identities(self.topology)}
        if node_id not in kinds:
            raise StackError(f"no node {node_id!r} in this topology")
        return tls.node_credentials(self.certs_dir, kinds[node_id], node_id)

    def make_certs(self, *terminal_ids: str) -> None:
        """Certificates for the topology's terminals (and ``terminal_ids``) and every process,
        if missing."""
        ids = [t.id for t in self.topology.terminals] + list(terminal_ids)
        make_certs(self.certs_dir, dict.fromkeys(ids), nodes=network_identities(self.topology))

    def log_path(self, node_id: str) -> Path:
        return self._child(node_id).log_path

    def pid(self, node_id: str) -> int | None:
        """The child's process id while it runs (a held one too: see ``prestart``)."""
        proc = self._child(node_id).proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def running(self, node_id: str) -> bool:
        """Started and not held (``prestart``): it serves or is on its way to."""
        return self.pid(node_id) is not None and not self._child(node_id).held

    def exited(self) -> dict[str, int]:
        """Children that were started and have since exited, with their exit codes."""
        return {
            c.node_id: c.proc.returncode
            for c in self._children.values()
            if c.proc is not None and c.proc.poll() is not None
        }

    def unexpected_exits(self) -> dict[str, int]:
        """Children that exited on their own since the last call (not killed or stopped)."""
        news = {}
        for child in self._children.values():
            if child.proc is not None and child.proc.poll() is not None:
                if not child.reported_exit:
                    child.reported_exit = True
                    news[child.node_id] = child.proc.returncode
        return news

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Stack:
        """Start every child tier by tier, each tier SERVING before the next; returns self."""
        if any(self.running(n) for n in self._children):
            raise StackError("stack already started")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.tls or self.network_tls:
            self.make_certs()
        try:
            for tier in ("issuer", "scheme", "acquirer", "switch"):
                children = [c for c in self._children.values() if c.kind == tier]
                for child in children:
                    self._spawn(child)
                self._wait_serving(children, self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, child: _Child, held: bool = False) -> None:
        child.proc, child.output = self._popen(child, held)
        child.held = held
        child.reported_exit = False

    def _popen(self, child: _Child, held: bool) -> tuple[subprocess.Popen[bytes], _Output]:
        with open_private_log(child.log_path) as log:
            log.write(f"--- starting {child.node_id}: {' '.join(child.argv[1:4])}\n".encode())
        env = self._env | {startgate.GATE_ENV: "1"} if held else self._env
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            child.argv,
            stdin=subprocess.PIPE if held else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        assert proc.stdout is not None
        return proc, _Output(child.node_id, proc.stdout, child.log_path, self._echo)

    def wait_serving(self, node_id: str, timeout: float | None = None) -> None:
        self._wait_serving([self._child(node_id)], timeout or self.ready_timeout)

    def _wait_serving(self, children: Iterable[_Child], timeout: float) -> None:
        """Poll gRPC health of every child until all are SERVING, one exits, or time is up."""
        pending = {c.node_id: c for c in children}
        channels = {c.node_id: self._health_channel(c) for c in pending.values()}
        deadline = time.monotonic() + timeout
        try:
            while pending:
                for node_id, child in list(pending.items()):
                    assert child.proc is not None
                    if child.proc.poll() is not None:
                        raise StackError(
                            f"{node_id} ({child.kind}) exited with code {child.proc.returncode}"
                            f" before serving; see {child.log_path}\n{_tail(child.log_path)}"
                        )
                    if _serving(channels[node_id]):
                        del pending[node_id]
                if not pending:
                    break
                if time.monotonic() > deadline:
                    names = ", ".join(
                        f"{c.node_id} ({c.kind} on {c.listen}; see {c.log_path})"
                        for c in pending.values()
                    )
                    raise StackError(f"not SERVING after {timeout:.0f} s: {names}")
                time.sleep(_POLL_S)
        finally:
            for channel in channels.values():
                channel.close()

    def _health_channel(self, child: _Child) -> grpc.Channel:
        address = connect_address(child.listen)
        creds = None
        if child.kind == "switch" and self.tls:
            creds = tls.probe_credentials(self.certs_dir)
        elif child.kind != "switch" and self.network_tls:
            creds = tls.operator_credentials(self.certs_dir)
        if creds is not None:
            return grpc.secure_channel(address, creds, options=_HEALTH_CHANNEL_OPTIONS)
        return grpc.insecure_channel(address, options=_HEALTH_CHANNEL_OPTIONS)

    def kill(self, node_id: str, sig: int = signal.SIGKILL, wait: bool = True) -> int | None:
        """Send ``sig`` to one child; with ``wait``, wait (bounded) for it to exit.

        Returns the exit code if it has exited, else None.
        """
        child = self._child(node_id)
        proc = child.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        child.reported_exit = True  # an exit we caused is not news
        proc.send_signal(sig)
        if not wait:
            return proc.poll()
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_output(child)
        return proc.returncode

    def set_env(self, name: str, value: str | None) -> None:
        """Set (or, with None, unset) one variable of the environment of every child started
        from now on: tests arm a crash point (``PAYSWITCH_CRASH_AT``) for one restart."""
        if value is None:
            self._env.pop(name, None)
        else:
            self._env[name] = value

    def restart(self, node_id: str) -> None:
        """Stop the child if it runs (SIGTERM, then SIGKILL), start it again, wait SERVING."""
        child = self._child(node_id)
        self._terminate([child])
        self._spawn(child)
        self._wait_serving([child], self.ready_timeout)

    # -- process control for fault injection (tests/faults) ---------------------------------

    def stop_node(self, node_id: str) -> None:
        """Stop one child gracefully (SIGTERM, then SIGKILL after ``stop_timeout``)."""
        self._terminate([self._child(node_id)])

    def prestart(self, node_id: str) -> None:
        """Start a child's next process ahead of its restart, held after its imports
        (``payswitch/startgate.py``: nothing bound or opened yet); ``start_node`` releases
        it. A planned outage so costs no interpreter start after it. Beside a child that
        runs, the process waits as its standby (a kill -9 still hits the running one only);
        a child held already is left alone."""
        child = self._child(node_id)
        if self.pid(node_id) is not None and not child.held:
            if child.standby is None or child.standby[0].poll() is not None:
                child.standby = self._popen(child, held=True)
            return
        if self.pid(node_id) is None:
            self._join_output(child)
            if child.standby is not None and child.standby[0].poll() is None:
                (child.proc, child.output), child.standby = child.standby, None
                child.held, child.reported_exit = True, False
            else:
                self._spawn(child, held=True)

    def start_node(self, node_id: str) -> None:
        """Start a stopped or killed child again with the same arguments (same port, books,
        store), or release the one ``prestart`` holds, and wait until it is SERVING; a child
        that runs is left alone."""
        if self.running(node_id):
            return
        child = self._child(node_id)
        if child.standby is not None and not child.held:
            self.prestart(node_id)  # the standby becomes the held child
        if child.held and child.proc is not None and child.proc.poll() is None:
            self._release(child)
        else:
            self._join_output(child)
            self._spawn(child)
        self._wait_serving([child], self.ready_timeout)

    @staticmethod
    def _release(child: _Child) -> None:
        """The held child's go (it exits, quietly, if its stdin closes without one)."""
        assert child.proc is not None and child.proc.stdin is not None
        child.held = False
        try:
            child.proc.stdin.write(startgate.GO)
            child.proc.stdin.close()
        except BrokenPipeError:
            pass  # it died meanwhile: _wait_serving reports its exit

    def kill_and_restart(self, node_id: str, down_s: float = 0.0) -> None:
        """``kill -9`` one child (a switch dies mid-request, nothing flushed or answered),
        keep it down ``down_s`` seconds, then start it again on the same store and port."""
        self.kill(node_id, signal.SIGKILL)
        if down_s > 0:
            time.sleep(down_s)
        self.start_node(node_id)

    def stop(self) -> None:
        """Stop every child, the switch first and issuers last; the ports this process
        reserved for them (``payswitch.world.ports.free_ports``) are given back."""
        self._terminate(list(reversed(self._children.values())))
        addresses = [a for c in self._children.values() for a in (c.listen, c.admin_listen)]
        addresses += [c.metrics_listen for c in self._children.values()]
        release([int(a.rpartition(":")[2]) for a in addresses if a.rpartition(":")[2].isdigit()])

    def _terminate(self, children: list[_Child]) -> None:
        for child in children:  # a standby never started anything: killed outright
            if child.standby is not None:
                standby, output = child.standby
                child.standby = None
                standby.kill()
                standby.wait(timeout=self.stop_timeout)
                output.thread.join(timeout=self.stop_timeout)
        live = [c for c in children if c.proc is not None and c.proc.poll() is None]
        for child in live:
            child.reported_exit = True
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in live:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(timeout=self.stop_timeout)
        for child in children:
            self._join_output(child)

    def _join_output(self, child: _Child) -> None:
        if child.output is not None:
            child.output.thread.join(timeout=self.stop_timeout)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serving(channel: grpc.Channel) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.25)
    except grpc.RpcError:
        return False
    serving: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
    return serving


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="payswitch-stack",
        description="Run the simulated card network and the switch, each as its own process.",
    )
    p.add_argument("--topology", required=True, help="topology TOML file")
    p.add_argument("--run-dir", required=True, help="logs, issuer books and the switch store")
    p.add_argument(
        "--store", default="sqlite", help="'sqlite' (<run-dir>/switch.db) or a store URL"
    )
    p.add_argument("--no-switch", action="store_true", help="start the network nodes only")
    p.add_argument(
        "--switches",
        type=int,
        default=1,
        help="switch processes on one shared store (>1 needs a cassandra:// store)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for the nodes' fault draws")
    p.add_argument("--ready-timeout", type=float, default=30.0, help="seconds per tier")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def _say(text: str) -> None:
    with _Output._stdout_lock:
        sys.stdout.write(f"[stack] {text}\n")
        sys.stdout.flush()


def _interrupt(_sig: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    private_files()
    args = parse_args(argv)
    try:
        stack = Stack(
            args.topology,
            args.run_dir,
            store=args.store,
            switch=not args.no_switch,
            switches=args.switches,
            seed=args.seed,
            echo=True,
            ready_timeout=args.ready_timeout,
            log_level=args.log_level,
        )
    except (OSError, TopologyError, ValueError) as exc:
        sys.exit(f"payswitch-stack: {exc}")
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        if not stack.network_tls:
            _say("WARNING: [network] tls = false: every hop is plaintext and unauthenticated")
        stack.start()
        _say("all SERVING: " + ", ".join(f"{n}@{stack.address(n)}" for n in stack.node_ids))
        while True:
            for node_id, returncode in stack.unexpected_exits().items():
                _say(f"{node_id} exited with code {returncode}; see {stack.log_path(node_id)}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        _say("stopping")
    except StackError as exc:
        _say(f"error: {exc}")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
