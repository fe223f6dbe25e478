"""Ray test helpers: comparable records, a Ray actor's process, and a two-node cluster on this
one machine (`ray start --head` plus `ray start --address`), started and always torn down."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

TIMING = ("stages", "peak_rss_bytes")
OBJECT_STORE = 256 << 20  # bytes per node: the tests move a few small pictures


def ctrl_c_after_lines(command: list[str], out: Path, cwd: Path, lines: int = 2) -> str:
    """Run `command`, send SIGINT once `out` holds `lines` whole lines (mid-run), and return its
    stderr after checking the exit code a Ctrl-C must give: 130."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not (out.exists() and out.read_text().count("\n") >= lines):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    return stderr


def comparable(records: list[dict]) -> list[dict]:
    """Records without what differs from run to run (timings, memory)."""
    return [{k: v for k, v in record.items() if k not in TIMING} for record in records]


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def actor_pids(class_name: str) -> list[int]:
    """Processes of live Ray actors of `class_name` (Ray titles them `ray::…(ClassName)…`)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if command.startswith(b"ray::") and class_name.encode() in command:
            found.append(int(entry))
    return found


def single_actor_pid(class_name: str) -> int:
    """The live actor process of `class_name` that started last. An actor of an earlier test may
    still be exiting when this one runs (Ray stops them asynchronously): it started earlier."""
    pids = actor_pids(class_name)
    assert pids, f"no {class_name} actor process"

    def started(pid: int) -> int:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time in clock ticks

    return max(pids, key=started)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for one in sockets:
        one.bind(("127.0.0.1", 0))
    ports = [one.getsockname()[1] for one in sockets]
    for one in sockets:
        one.close()
    return ports


def _ray_start(ports: list[int], folder: str, head_port: int, head: bool) -> list[str]:
    ray = str(Path(sys.executable).with_name("ray"))
    node_manager, object_manager, agent, metrics, runtime_env, worker_low = ports
    common = [
        "--num-cpus",
        "1",
        "--block",
        "--node-ip-address",
        "127.0.0.1",
        "--object-store-memory",
        str(OBJECT_STORE),
        "--node-manager-port",
        str(node_manager),
        "--object-manager-port",
        str(object_manager),
        "--dashboard-agent-listen-port",
        str(agent),
        "--metrics-export-port",
        str(metrics),
        "--runtime-env-agent-port",
        str(runtime_env),
        "--min-worker-port",
        str(worker_low),
        "--max-worker-port",
        str(worker_low + 40),
    ]
    if head:
        return [
            ray,
            "start",
            "--head",
            "--port",
            str(head_port),
            "--temp-dir",
            folder,
            "--include-dashboard",
            "false",
            *common,
        ]
    return [ray, "start", "--address", f"127.0.0.1:{head_port}", *common]


@contextmanager
def two_node_cluster(timeout_s: float = 90):
    """(`127.0.0.1:PORT`, env) of a head node and a worker node, each one CPU, in their own
    process groups; stopped by signal to those groups (never `ray stop`, which stops every Ray
    of the user on this machine). Ray's token authentication stays on, with a token of this
    cluster's own in `env`, which a driver needs to connect (nothing written to ~/.ray)."""
    folder = tempfile.mkdtemp(prefix="/tmp/edge-et-2n-")
    head_port, *ports = free_ports(13)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    processes = []
    try:
        for head, chosen in ((True, ports[:6]), (False, ports[6:])):
            processes.append(
                subprocess.Popen(
                    _ray_start(chosen, folder, head_port, head),
                    env=env,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            if head:
                _wait_for_port(head_port, timeout_s)
        address = f"127.0.0.1:{head_port}"
        _wait_for_nodes(address, 2, timeout_s, env)
        yield address, env
    finally:
        for process in reversed(processes):
            _stop_group(process)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Ray's head did not listen on {port} within {timeout_s:.0f} s")


def _wait_for_nodes(address: str, count: int, timeout_s: float, env: dict) -> None:
    probe = (
        "import ray, sys, time\nray.init(address=sys.argv[1], logging_level='ERROR')\n"
        "deadline = time.monotonic() + float(sys.argv[3])\n"
        "while len([n for n in ray.nodes() if n['Alive']]) < int(sys.argv[2]):\n"
        "    assert time.monotonic() < deadline, 'nodes did not join'\n    time.sleep(0.5)\n"
    )
    subprocess.run(
        [sys.executable, "-c", probe, address, str(count), str(timeout_s)],
        check=True,
        timeout=timeout_s + 30,
        capture_output=True,
        env=env,
    )


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the node's process group (`ray start --block` stops its raylet and workers
    on it), SIGKILL to what is left after a grace period."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=20)
            if sent == signal.SIGTERM:
                time.sleep(1)  # the group's children get a moment to exit
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(process.pid, signal.SIGKILL)  # anything of the group still running
    except ProcessLookupError:
        pass
