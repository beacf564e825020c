#!/usr/bin/env python3
"""Performance benchmark of servitor, side by side with a bare spawner (DESIGN.md section 10).

Starts the release binary on a fresh working directory under /tmp, measures every figure of the
spec against it and against `examples/bare_spawner.rs` (the least work that starting a job can
take) in the same run, prints a table and writes the figures as JSON. See bench/README.md.

    python3 bench/bench.py [--runs 3] [--binary target/release/servitor] [--json out.json] [--smoke]

Standard library only. `--smoke` uses tiny sizes and exits 0 as soon as every figure was produced,
whether or not it met its target; a full run reports met and missed targets.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKERS = 2  # the bare spawner runs 2 at a time; servitor gets the same number of workers
TERMINAL = {"success", "failure", "cancelled"}
MB = 1_000_000
CURL = shutil.which("curl")  # the log download's client when present, see download()

FULL = {
    "triggers": 500,  # throughput: triggers, and the executions behind "RSS after"
    "clients": 4,  # concurrent clients sending those triggers
    "latency": 50,  # sequential triggers for trigger-to-start
    "executions": 5000,  # executions on disk for executions/get_list and startup
    "jobs": 2000,  # jobs in config/jobs for jobs/get_list
    "log_mb": 200,  # size of the log downloaded
    "downloads": 3,  # downloads of it, from servitor and from the sendfile server each
    "follow_lines": 100,  # timestamp lines written by the followed job
    "follow_interval": 0.05,  # seconds between those lines
    "requests": 20,  # timed requests per listing, after the warm-ups
    "warmups": 2,
    "startups": 5,  # daemon starts timed per run
    "timeout": 300.0,  # seconds any one phase may take
}
SMOKE = {
    "triggers": 200,
    "clients": 4,
    "latency": 20,
    "executions": 200,
    "jobs": 50,
    "log_mb": 2,
    "downloads": 1,
    "follow_lines": 20,
    "follow_interval": 0.02,
    "requests": 5,
    "warmups": 1,
    "startups": 2,
    "timeout": 30.0,
}

TRIVIAL_RUN = "#!/bin/sh\necho hello\n"

# The followed job: after a pause that lets the follower attach, writes one line per interval
# holding the wall clock in nanoseconds, read right before the write.
FOLLOW_RUN = """#!{python}
import os, time
os.write(1, b"start\\n")
time.sleep(0.5)
for _ in range({lines}):
    os.write(1, b"%d\\n" % time.time_ns())
    time.sleep({interval})
"""


# --- HTTP over the UNIX socket --------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client speaking to a UNIX socket instead of a TCP host."""

    def __init__(self, socket_path: Path | str, timeout: float = 60.0):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(socket_path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def call(conn: http.client.HTTPConnection, method: str, path: str) -> tuple[int, bytes]:
    """One request on a kept-alive connection; returns the status and the whole body."""
    conn.request(method, path)
    response = conn.getresponse()
    return response.status, response.read()


def call_json(conn: http.client.HTTPConnection, method: str, path: str):
    status, body = call(conn, method, path)
    if status != 200:
        raise RuntimeError(f"{method} {path} answered {status}: {body[:200]!r}")
    return json.loads(body)


# --- small helpers ---------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile, the same definition the bare spawner uses."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.002):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def write(path: Path, text: str | bytes, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    if mode is not None:
        path.chmod(mode)


# --- the working directory -------------------------------------------------------------------------


def finished_execution(directory: Path, log: bytes = b"hello\n") -> None:
    """One successful execution in the on-disk layout of DESIGN.md section 5."""
    (directory / "logs").mkdir(parents=True)
    (directory / "input.json").write_bytes(b"{}")
    (directory / "status_history.tsv").write_bytes(
        b"2025-01-01T10:00:00.000000Z\tcreated\n"
        b"2025-01-01T10:00:00.100000Z\trunning\n"
        b"2025-01-01T10:00:01.000000Z\tsuccess\n"
    )
    (directory / "result.tsv").write_bytes(b"0\t\n")
    (directory / "logs" / "main.txt").write_bytes(log)


def prepare(wd: Path, size: dict) -> Path:
    """Jobs and recorded executions, written before the daemon first starts.

    config/jobs holds exactly size["jobs"] jobs: trivial (throughput and latency), follow (log
    follow), many (size["executions"] finished executions on disk), biglog (one execution whose log
    is size["log_mb"] MB) and bulk/jNNNNN for the rest. Returns the path of the big log.
    """
    jobs = wd / "config" / "jobs"
    write(jobs / "trivial" / "run", TRIVIAL_RUN, 0o755)
    write(jobs / "many" / "run", TRIVIAL_RUN, 0o755)
    write(jobs / "biglog" / "run", TRIVIAL_RUN, 0o755)
    follow = FOLLOW_RUN.format(
        python=sys.executable, lines=size["follow_lines"], interval=size["follow_interval"]
    )
    write(jobs / "follow" / "run", follow, 0o755)
    for index in range(size["jobs"] - 4):
        write(jobs / "bulk" / f"j{index:05}" / "run", TRIVIAL_RUN, 0o755)

    many = wd / "state" / "jobs" / "many" / "executions"
    for execution in range(1, size["executions"] + 1):
        finished_execution(many / str(execution))
    (many / "last_execution.txt").write_text(str(size["executions"]))

    biglog = wd / "state" / "jobs" / "biglog" / "executions"
    finished_execution(biglog / "1", b"")
    (biglog / "last_execution.txt").write_text("1")
    log = biglog / "1" / "logs" / "main.txt"
    line = b"0123456789 the quick brown fox jumps over the lazy dog 0123456789\n"
    block = line * (MB // len(line)) + b"x" * (MB % len(line) - 1) + b"\n"
    with open(log, "wb") as out:
        for _ in range(size["log_mb"]):
            out.write(block)
    return log


# --- the bare spawner ------------------------------------------------------------------------------


def spawner_binary(given: str | None) -> Path:
    if given:
        return Path(given).resolve()
    path = REPO / "target" / "release" / "examples" / "bare_spawner"
    if not path.exists():
        print("building the bare spawner (cargo build --release --example bare_spawner)", flush=True)
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "--example", "bare_spawner"],
            cwd=REPO,
            check=True,
        )
    return path


def run_spawner(binary: Path, run: Path, directory: Path, size: dict) -> dict:
    output = subprocess.run(
        [
            str(binary),
            "--run", str(run),
            "--dir", str(directory),
            "--count", str(size["triggers"]),
            "--parallel", str(WORKERS),
            "--latency-count", str(size["latency"]),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=size["timeout"],
    ).stdout
    figures = json.loads(output)
    return {
        "spawner_eps": figures["executions_per_second"],
        "spawner_p50_ms": figures["first_output_p50_ms"],
        "spawner_p95_ms": figures["first_output_p95_ms"],
    }


# --- the daemon ------------------------------------------------------------------------------------


class Daemon:
    """One servitor process on the benchmark's working directory."""

    def __init__(self, binary: Path, wd: Path, stderr_path: Path):
        self.binary = binary
        self.wd = wd
        self.socket = wd / "servitor.sock"
        self.stderr_path = stderr_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float, ask: bool = True) -> tuple[float, float | None]:
        """Starts the daemon; returns seconds from exec until the socket accepted a connection,
        and until that connection answered GET /api/jobs/get_list (None when not `ask`ed)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVITOR_")}
        env.pop("RUST_LOG", None)
        with open(self.stderr_path, "ab") as stderr:
            began = time.perf_counter()
            self.process = subprocess.Popen(
                [str(self.binary), "serve", "--dir", str(self.wd), "--workers", str(WORKERS)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )
        deadline = began + timeout
        path = str(self.socket)
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}: {self.tail()}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"socket not accepting after {timeout:.0f} s: {self.tail()}")
        accepted = time.perf_counter() - began
        if not ask:
            sock.close()
            return accepted, None
        conn = UnixHTTPConnection(path, timeout=timeout)
        conn.sock = sock
        sock.settimeout(timeout)
        status, body = call(conn, "GET", "/api/jobs/get_list")
        answered = time.perf_counter() - began
        conn.close()
        if status != 200:
            raise RuntimeError(f"GET /api/jobs/get_list answered {status}: {body[:200]!r}")
        return accepted, answered

    def connection(self, timeout: float = 60.0) -> UnixHTTPConnection:
        return UnixHTTPConnection(self.socket, timeout=timeout)

    @property
    def pid(self) -> int:
        assert self.process is not None, "the daemon was started"
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-600:]
        except OSError:
            return ""


# --- measurements ----------------------------------------------------------------------------------


def measure_startups(daemon: Daemon, size: dict) -> dict:
    accepts, answers = [], []
    for _ in range(size["startups"]):
        accepted, answered = daemon.start(size["timeout"])
        daemon.stop()
        accepts.append(accepted * 1000)
        answers.append(answered * 1000)
    return {
        "startup_accept_ms": statistics.median(accepts),
        "startup_answer_ms": statistics.median(answers),
    }


def time_request(daemon: Daemon, path: str, size: dict, expect_items: int) -> float:
    """Median milliseconds of GET `path` (request sent to body read) on one kept-alive
    connection, after warm-ups. Checks the answer is a JSON list of `expect_items` items."""
    conn = daemon.connection(size["timeout"])
    try:
        for _ in range(size["warmups"]):
            items = call_json(conn, "GET", path)
        times, bodies = [], []
        for _ in range(size["requests"]):
            began = time.perf_counter()
            status, body = call(conn, "GET", path)
            times.append((time.perf_counter() - began) * 1000)
            bodies.append((status, body))
        for status, body in bodies:
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        items = json.loads(bodies[-1][1])
        if not isinstance(items, list) or len(items) != expect_items:
            count = len(items) if isinstance(items, list) else type(items).__name__
            raise RuntimeError(f"GET {path} gave {count} items, expected {expect_items}")
        return statistics.median(times)
    finally:
        conn.close()


def measure_listings(daemon: Daemon, size: dict) -> dict:
    return {
        "list_exec_full_ms": time_request(
            daemon, "/api/jobs/executions/get_list?job_id=many", size, size["executions"]
        ),
        "list_exec_limit_ms": time_request(
            daemon, "/api/jobs/executions/get_list?job_id=many&limit=50", size, 50
        ),
        "list_jobs_ms": time_request(daemon, "/api/jobs/get_list", size, size["jobs"]),
    }


def wait_terminal(conn, job: str, execution: str, timeout: float) -> dict:
    path = f"/api/jobs/executions/get?job_id={job}&execution_id={execution}"

    def finished():
        record = call_json(conn, "GET", path)
        return record if record.get("status") in TERMINAL else None

    return wait_until(finished, timeout, f"execution {execution} of {job} to finish")


def last_execution_id(conn, job: str) -> int:
    listed = call_json(conn, "GET", f"/api/jobs/executions/get_list?job_id={job}&limit=1")
    return int(listed[0]["execution_id"]) if listed else 0


def measure_trigger_latency(daemon: Daemon, size: dict) -> dict:
    """Sequential triggers of `trivial` with every worker free: from just before the request is
    sent until the execution's log file holds a first byte, watched by polling its size in a tight
    loop (the method the bare spawner uses from just before spawn())."""
    job = "trivial"
    conn = daemon.connection(size["timeout"])
    executions = daemon.wd / "state" / "jobs" / job / "executions"
    latencies = []
    try:
        last = last_execution_id(conn, job)
        for _ in range(size["latency"]):
            expected = str(last + 1)
            log = str(executions / expected / "logs" / "main.txt")
            began = time.perf_counter()
            conn.request("POST", f"/api/jobs/run?job_id={job}")
            while True:
                try:
                    if os.stat(log).st_size > 0:
                        break
                except FileNotFoundError:
                    pass
                if time.perf_counter() - began > size["timeout"]:
                    raise TimeoutError(f"execution {expected} wrote nothing to {log}")
            latencies.append((time.perf_counter() - began) * 1000)
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200 or answer.get("execution_id") != expected:
                raise RuntimeError(f"run answered {response.status} {answer}, expected {expected}")
            wait_terminal(conn, job, expected, size["timeout"])
            last += 1
    finally:
        conn.close()
    return {
        "start_p50_ms": percentile(latencies, 0.50),
        "start_p95_ms": percentile(latencies, 0.95),
    }


class EventWatcher:
    """Reads /api/events in a thread and records when each execution of one job ended."""

    def __init__(self, daemon: Daemon, job: str, timeout: float):
        self.job = job
        self.ended: dict[str, float] = {}
        self.changed = threading.Condition()
        self.error: BaseException | None = None
        self.conn = daemon.connection(timeout=None)
        self.conn.request("GET", "/api/events")
        self.response = self.conn.getresponse()
        if self.response.status != 200:
            raise RuntimeError(f"GET /api/events answered {self.response.status}")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                line = self.response.readline()
                if not line:
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                payload = event.get("payload") or {}
                if payload.get("job_id") == self.job and payload.get("status") in TERMINAL:
                    now = time.perf_counter()
                    with self.changed:
                        self.ended.setdefault(str(payload["execution_id"]), now)
                        self.changed.notify_all()
        except Exception as error:  # also what closing the connection under readline() raises
            self.error = error
        finally:
            with self.changed:
                self.changed.notify_all()

    def close(self) -> None:
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def recover_missed(daemon, watcher, job, ids, began, wall_began) -> int:
    """Reads the record of every execution the event stream has not reported ended; a terminal
    one counts as ended at the time of its last status_history entry. Called with the watcher's
    lock held. Returns how many were recovered."""
    recovered = 0
    conn = daemon.connection()
    try:
        for execution in [i for i in ids if i not in watcher.ended]:
            record = call_json(
                conn, "GET", f"/api/jobs/executions/get?job_id={job}&execution_id={execution}"
            )
            if record.get("status") in TERMINAL:
                stamp = record["status_history"][-1]["timestamp"]
                wall = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                watcher.ended[execution] = began + (wall - wall_began)
                recovered += 1
    finally:
        conn.close()
    return recovered


def measure_throughput(daemon: Daemon, size: dict) -> dict:
    """size["triggers"] triggers of `trivial` from size["clients"] threads, each on its own
    connection, timed from the first request until /api/events reported the last of those
    executions ended."""
    job = "trivial"
    triggers, clients, timeout = size["triggers"], size["clients"], size["timeout"]
    watcher = EventWatcher(daemon, job, timeout)
    ids: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(count: int) -> None:
        conn = daemon.connection(timeout)
        mine = []
        try:
            start.wait()
            for _ in range(count):
                answer = call_json(conn, "POST", f"/api/jobs/run?job_id={job}")
                mine.append(str(answer["execution_id"]))
        except Exception as error:  # reported below, the figure is then missing
            failures.append(f"{type(error).__name__}: {error}")
        finally:
            conn.close()
            with lock:
                ids.extend(mine)

    shares = [triggers // clients + (1 if i < triggers % clients else 0) for i in range(clients)]
    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    wall_began = time.time()
    try:
        for thread in threads:
            thread.join(timeout)
        if failures or len(ids) != triggers:
            raise RuntimeError(f"{len(ids)} of {triggers} triggers accepted: {failures[:3]}")
        deadline = time.monotonic() + timeout
        missed = 0
        with watcher.changed:
            while not all(i in watcher.ended for i in ids):
                quiet = time.perf_counter() - max(watcher.ended.values(), default=began)
                if watcher.error or not watcher.thread.is_alive() or quiet > 2.0:
                    # The stream ended or went quiet with executions unaccounted for (a
                    # subscriber that falls behind is told `events_lost`): read those records.
                    missed += recover_missed(daemon, watcher, job, ids, began, wall_began)
                if time.monotonic() > deadline:
                    done = sum(i in watcher.ended for i in ids)
                    raise TimeoutError(f"only {done} of {triggers} executions reported ended")
                watcher.changed.wait(0.5)
            finished = max(watcher.ended[i] for i in ids)
    finally:
        watcher.close()
    if missed:
        print(f"  {missed} terminal events missing from /api/events; their time was taken "
              "from status_history", flush=True)
    return {"throughput_eps": triggers / (finished - began), "throughput_events_missed": missed}


class SendfileServer:
    """The reference: answers one HTTP request on a UNIX socket with headers, then
    socket.sendfile() of the file."""

    def __init__(self, path: Path, file: Path):
        self.path = path
        self.file = file
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve_one, daemon=True)
        self.thread.start()

    def _serve_one(self) -> None:
        conn, _ = self.listener.accept()
        with conn, open(self.file, "rb") as body:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            length = os.fstat(body.fileno()).st_size
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % length
            )
            conn.sendfile(body)

    def close(self) -> None:
        self.thread.join(5)
        self.listener.close()
        self.path.unlink(missing_ok=True)


def download(socket_path: Path, path: str, timeout: float) -> tuple[int, float]:
    """GET `path` and read the body into a reused buffer; returns bytes read and seconds taken
    from sending the request to the last byte.

    With curl on the machine, curl downloads (its chunked decoding costs next to nothing);
    http.client's decoder spends microseconds of Python per chunk, which caps a chunked body at
    1-2 GB/s with small chunks and would measure the client instead of the server."""
    if CURL:
        output = subprocess.run(
            [CURL, "--silent", "--show-error", "--fail", "--unix-socket", str(socket_path),
             "--output", "/dev/null", "--write-out", "%{size_download} %{time_total}",
             f"http://localhost{path}"],
            check=True, capture_output=True, text=True, timeout=timeout,
        ).stdout.split()
        return int(output[0]), float(output[1])
    conn = UnixHTTPConnection(socket_path, timeout=timeout)
    buffer = memoryview(bytearray(1 << 20))
    try:
        began = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        total = 0
        while True:
            count = response.readinto(buffer)
            if not count:
                break
            total += count
        return total, time.perf_counter() - began
    finally:
        conn.close()


def measure_download(daemon: Daemon, log: Path, scratch: Path, size: dict) -> dict:
    expected = log.stat().st_size
    path = "/api/jobs/executions/logs/get?job_id=biglog&execution_id=1"
    servitor_rates, reference_rates, growths = [], [], []
    for round_ in range(size["downloads"]):
        before = rss_mb(daemon.pid)
        peak = before
        sampling = True

        def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, rss_mb(daemon.pid))
                time.sleep(0.002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            got, seconds = download(daemon.socket, path, size["timeout"])
        finally:
            sampling = False
            sampler.join()
        if got != expected:
            raise RuntimeError(f"servitor sent {got} bytes of a {expected}-byte log")
        servitor_rates.append(got / seconds / MB)
        growths.append(peak - before)

        reference = SendfileServer(scratch / f"sendfile{round_}.sock", log)
        try:
            got, seconds = download(reference.path, path, size["timeout"])
        finally:
            reference.close()
        if got != expected:
            raise RuntimeError(f"the sendfile server sent {got} of {expected} bytes")
        reference_rates.append(got / seconds / MB)
    return {
        "download_mbps": statistics.median(servitor_rates),
        "sendfile_mbps": statistics.median(reference_rates),
        "download_rss_growth_mb": max(growths),
    }


def measure_follow(daemon: Daemon, size: dict) -> dict:
    """Triggers `follow` and follows its log; each timestamp line's latency is the wall clock
    when the line was read minus the timestamp the job took right before writing it."""
    conn = daemon.connection(size["timeout"])
    try:
        answer = call_json(conn, "POST", "/api/jobs/run?job_id=follow")
    finally:
        conn.close()
    execution = answer["execution_id"]
    stream = daemon.connection(size["timeout"])
    latencies = []
    try:
        stream.request(
            "GET", f"/api/jobs/executions/logs/get?job_id=follow&execution_id={execution}"
        )
        response = stream.getresponse()
        if response.status != 200:
            raise RuntimeError(f"logs/get answered {response.status}")
        attached = time.time_ns()
        while True:
            line = response.readline()
            received = time.time_ns()
            if not line:
                break
            text = line.strip()
            if text.isdigit() and int(text) >= attached:
                latencies.append((received - int(text)) / 1e6)
    finally:
        stream.close()
    if len(latencies) < size["follow_lines"] // 2:
        raise RuntimeError(f"only {len(latencies)} of {size['follow_lines']} lines followed live")
    return {
        "follow_p50_ms": percentile(latencies, 0.50),
        "follow_p95_ms": percentile(latencies, 0.95),
    }


# --- one run ---------------------------------------------------------------------------------------


def phase(figures: dict, errors: list, name: str, measure, *args) -> None:
    try:
        figures.update(measure(*args))
    except Exception as error:
        errors.append(f"{name}: {type(error).__name__}: {error}")
        print(f"  {name} failed: {type(error).__name__}: {error}", flush=True)


def one_run(binary: Path, spawner: Path, size: dict, keep: bool) -> tuple[dict, list]:
    base = Path(tempfile.mkdtemp(prefix="svb", dir="/tmp"))
    wd = base / "wd"
    figures: dict = {}
    errors: list = []
    daemon = Daemon(binary, wd, base / "daemon.stderr")
    try:
        print(f"  preparing {wd}", flush=True)
        log = prepare(wd, size)
        run = wd / "config" / "jobs" / "trivial" / "run"
        print("  bare spawner", flush=True)
        phase(figures, errors, "bare spawner", run_spawner, spawner, run, base / "spawner", size)
        print("  startup", flush=True)
        phase(figures, errors, "startup", measure_startups, daemon, size)

        daemon.start(size["timeout"], ask=False)
        time.sleep(0.5)
        figures["rss_idle_mb"] = rss_mb(daemon.pid)
        print("  listings", flush=True)
        phase(figures, errors, "listings", measure_listings, daemon, size)
        print("  trigger-to-start latency", flush=True)
        phase(figures, errors, "trigger latency", measure_trigger_latency, daemon, size)
        print("  trigger throughput", flush=True)
        phase(figures, errors, "throughput", measure_throughput, daemon, size)
        time.sleep(0.2)
        if daemon.process is not None and daemon.process.poll() is None:
            figures["rss_after_mb"] = rss_mb(daemon.pid)
        print("  log download", flush=True)
        phase(figures, errors, "log download", measure_download, daemon, log, base, size)
        print("  log follow", flush=True)
        phase(figures, errors, "log follow", measure_follow, daemon, size)
    except Exception as error:
        errors.append(f"run: {type(error).__name__}: {error}")
        print(f"  run failed: {type(error).__name__}: {error}", flush=True)
    finally:
        daemon.stop()
        if errors:
            tail = daemon.tail()
            if tail:
                print(f"  daemon stderr (tail):\n{tail}", flush=True)
        if keep:
            print(f"  kept {base}", flush=True)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return figures, errors


# --- report ----------------------------------------------------------------------------------------


def at_least(limit):
    return lambda value: value >= limit


def below(limit):
    return lambda value: value < limit


def rows(size: dict) -> list[dict]:
    """The figures of the table: which measured value, its baseline, and the target, which
    applies to the ratio when there is a baseline and to the value otherwise."""
    triggers, executions = size["triggers"], size["executions"]
    return [
        {"figure": f"trigger throughput, {triggers} triggers, {size['clients']} clients (exec/s)",
         "key": "throughput_eps", "baseline": "spawner_eps",
         "target": "ratio >= 0.60", "check": at_least(0.60)},
        {"figure": "trigger-to-start p50 (ms)", "key": "start_p50_ms", "baseline": "spawner_p50_ms",
         "target": "ratio <= 1.5", "check": lambda ratio: ratio <= 1.5},
        {"figure": "trigger-to-start p95 (ms)", "key": "start_p95_ms", "baseline": "spawner_p95_ms"},
        {"figure": f"executions/get_list, {executions} executions (ms)",
         "key": "list_exec_full_ms", "target": "< 20 ms", "check": below(20)},
        {"figure": "executions/get_list limit=50 (ms)", "key": "list_exec_limit_ms",
         "target": "< 2 ms", "check": below(2)},
        {"figure": f"jobs/get_list, {size['jobs']} jobs (ms)", "key": "list_jobs_ms",
         "target": "< 20 ms", "check": below(20)},
        {"figure": f"log download, {size['log_mb']} MB (MB/s)", "key": "download_mbps",
         "baseline": "sendfile_mbps", "target": "ratio >= 0.75", "check": at_least(0.75)},
        {"figure": "RSS growth during download (MB)", "key": "download_rss_growth_mb",
         "target": "< 4 MB (flat)", "check": below(4)},
        {"figure": "log follow p50 (ms)", "key": "follow_p50_ms", "target": "< 5 ms",
         "check": below(5)},
        {"figure": "log follow p95 (ms)", "key": "follow_p95_ms"},
        {"figure": "RSS idle (MB)", "key": "rss_idle_mb", "target": "< 10 MB", "check": below(10)},
        {"figure": f"RSS after {triggers + size['latency']} executions (MB)",
         "key": "rss_after_mb", "target": "< 15 MB", "check": below(15)},
        {"figure": f"startup to accepting socket, {executions} executions (ms)",
         "key": "startup_accept_ms", "target": "< 20 ms", "check": below(20)},
        {"figure": "startup to first answer of jobs/get_list (ms)", "key": "startup_answer_ms"},
    ]


def median_of(values: list) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def summarize(runs: list[dict], size: dict) -> list[dict]:
    table = []
    for row in rows(size):
        value = median_of([run.get(row["key"]) for run in runs])
        baseline = ratio = met = None
        if "baseline" in row:
            baseline = median_of([run.get(row["baseline"]) for run in runs])
            ratio = median_of([
                run[row["key"]] / run[row["baseline"]]
                for run in runs
                if run.get(row["key"]) is not None and run.get(row["baseline"])
            ])
        if "check" in row:
            judged = ratio if "baseline" in row else value
            met = None if judged is None else bool(row["check"](judged))
        table.append({
            "figure": row["figure"],
            "key": row["key"],
            "servitor": value,
            "baseline": baseline,
            "ratio": ratio,
            "target": row.get("target"),
            "met": met,
        })
    return table


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_table(table: list[dict]) -> None:
    header = ("figure", "servitor", "baseline", "ratio", "target", "met?")
    lines = [header] + [
        (
            row["figure"],
            number(row["servitor"]),
            number(row["baseline"]),
            number(row["ratio"]),
            row["target"] or "-",
            "-" if row["met"] is None else ("yes" if row["met"] else "NO"),
        )
        for row in table
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:-2], widths[1:-2])
        ] + [line[-2].ljust(widths[-2]), line[-1]]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="repeat everything N times, report medians")
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "servitor"),
                        help="the servitor binary (default: target/release/servitor)")
    parser.add_argument("--spawner", help="the bare spawner binary (default: built from "
                        "examples/bare_spawner.rs when missing)")
    parser.add_argument("--json", help="write the figures as JSON to this file")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes; exit 0 when every figure was produced")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument("--no-curl", action="store_true",
                        help="download the log with http.client even when curl is installed")
    args = parser.parse_args()
    global CURL
    if args.no_curl:
        CURL = None

    size = dict(SMOKE if args.smoke else FULL)
    binary = Path(args.binary).resolve()
    if not binary.is_file():
        print(f"bench: no servitor binary at {binary} (cargo build --release)", file=sys.stderr)
        return 2
    spawner = spawner_binary(args.spawner)

    runs, errors = [], []
    for number_ in range(1, args.runs + 1):
        print(f"run {number_} of {args.runs}{' (smoke)' if args.smoke else ''}", flush=True)
        figures, run_errors = one_run(binary, spawner, size, args.keep)
        runs.append(figures)
        errors.extend(f"run {number_}: {error}" for error in run_errors)

    table = summarize(runs, size)
    print()
    print(f"servitor --workers {WORKERS}; bare spawner {WORKERS} at a time; "
          f"medians of {args.runs} run(s); ratio = servitor / baseline; "
          f"log downloaded with {'curl' if CURL else 'http.client'}")
    print()
    print_table(table)
    missing = [row["figure"] for row in table if row["servitor"] is None
               or (row["key"] in ("throughput_eps", "start_p50_ms", "start_p95_ms",
                                  "download_mbps") and row["baseline"] is None)]
    if errors:
        print("\nerrors:")
        for error in errors:
            print(f"  {error}")
    if args.json:
        report = {
            "smoke": args.smoke,
            "runs": args.runs,
            "workers": WORKERS,
            "sizes": size,
            "binary": str(binary),
            "download_client": "curl" if CURL else "http.client",
            "figures": table,
            "per_run": runs,
            "errors": errors,
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if missing:
        print(f"\nbench: {len(missing)} figure(s) not produced: {', '.join(missing)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
