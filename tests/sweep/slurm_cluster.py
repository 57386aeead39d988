"""A real single-node Slurm cluster on localhost for the sweep tests (munged, slurmctld, slurmd).

The fixture writes its own munge key and slurm.conf into a temporary folder, starts the three
daemons in the foreground as children of the test process (no systemd here), waits until
``sinfo`` shows the node idle and points the client commands (sbatch, squeue, scontrol...) at
it through ``SLURM_CONF``. The configuration avoids what a container lacks: process tracking by
the process tree (proctrack/linuxproc), no cgroup plugins, no accounting database.

Where the cluster cannot start (not root, packages missing, a daemon that fails), the tests that
use it are skipped with the reason and the daemon's log tail; ``scripts/system-deps.sh`` installs
the packages (Debian's slurmctld, slurmd, munge, slurm-client).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SlurmCluster:
    """A running cluster: its configuration file and the folder of its state and logs."""

    conf: Path
    root: Path
    partition: str = "debug"
    node: str = "localhost"

    @property
    def env(self) -> dict[str, str]:
        """What a client command needs to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *args: str, timeout: float = 10) -> str:
        """A Slurm client command (squeue, scontrol...) against this cluster: its stdout."""
        done = subprocess.run(
            args,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _real_memory_mb() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    return max(256, int(total * 0.8))  # below the machine's, or slurmd drains the node


def _write_config(root: Path) -> Path:
    """The munge key and slurm.conf of a one-node cluster under ``root``."""
    key_dir, socket_dir = root / "munge-key", root / "munge"
    for folder in (key_dir, socket_dir, root / "state", root / "spool", root / "log"):
        folder.mkdir(parents=True)
    key_dir.chmod(0o700)
    socket_dir.chmod(0o755)  # munged refuses a socket folder that others cannot enter
    key = key_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=replicator-test",
                # slurmctld only runs where SlurmctldHost names this host; its address is local
                f"SlurmctldHost={host}(127.0.0.1)",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                # cred_expire also delays the restart of a requeued job (default 120 s)
                f"AuthInfo=socket={socket_dir / 'munge.sock'},cred_expire=5",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                f"PlugStackConfig={root / 'plugstack.conf'}",
                # no systemd and perhaps no writable cgroups in a container
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "DefMemPerCPU=256",
                "SlurmdParameters=config_overrides",
                "MpiDefault=none",
                "SwitchType=switch/none",
                "ReturnToService=2",
                "JobRequeue=1",
                "PreemptType=preempt/none",
                "SchedulerType=sched/backfill",
                "SchedulerParameters=sched_interval=1,sched_min_interval=100000",
                "KillWait=2",
                "MinJobAge=600",
                "InactiveLimit=0",
                "Waittime=0",
                f"NodeName=localhost NodeHostname={host} NodeAddr=127.0.0.1 CPUs=2 "
                f"RealMemory={_real_memory_mb()} State=UNKNOWN",
                "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    (root / "plugstack.conf").write_text("")
    return conf


def _log_tail(root: Path, lines: int = 15) -> str:
    parts = []
    for name in ("munged.log", "slurmctld.log", "slurmd.log", "munged.out", "slurmctld.out"):
        path = root / "log" / name
        if path.exists() and path.stat().st_size:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path}:\n" + "\n".join(tail))
    return "\n".join(parts) or "(no daemon log)"


def _node_state(conf: Path) -> str:
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"],
            env={**os.environ, "SLURM_CONF": str(conf)},
            capture_output=True,
            text=True,
            timeout=5,
        )
    except subprocess.TimeoutExpired:
        return "sinfo timed out"
    return done.stdout.strip() or done.stderr.strip()


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(processes):
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in reversed(processes):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _why_not(root: Path) -> str | None:
    """Why this machine cannot run the cluster, before anything starts; None when it can."""
    if os.name != "posix" or os.geteuid() != 0:
        return "Slurm test cluster needs root (slurmd runs jobs as their user)"
    missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]
    if missing:
        return (
            f"Slurm test cluster: {', '.join(missing)} not installed "
            "(run `bash scripts/system-deps.sh` as root: Debian's slurmctld slurmd munge "
            "slurm-client)"
        )
    return None


def _start(root: Path, conf: Path) -> tuple[list[subprocess.Popen[bytes]], str | None]:
    """Start the daemons; the processes started, and why the cluster is not up (None: it is)."""
    log = root / "log"
    munge = root / "munge"
    commands = [
        [
            "munged",
            "--foreground",
            "--force",
            f"--key-file={root / 'munge-key' / 'munge.key'}",
            f"--socket={munge / 'munge.sock'}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--seed-file={munge / 'munged.seed'}",
            f"--log-file={log / 'munged.log'}",
        ],
        ["slurmctld", "-D", "-i", "-f", str(conf)],
        ["slurmd", "-D", "-N", "localhost", "-f", str(conf)],
    ]
    processes: list[subprocess.Popen[bytes]] = []
    for argv in commands:
        out = (log / f"{argv[0]}.out").open("wb")
        processes.append(
            subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "SLURM_CONF": str(conf)},
            )
        )
        out.close()
        if argv[0] == "munged":  # the others authenticate through its socket
            deadline = time.monotonic() + 5
            while not (munge / "munge.sock").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
    deadline = time.monotonic() + START_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        dead = [
            (cmd[0], p.returncode) for cmd, p in zip(commands, processes) if p.poll() is not None
        ]
        if dead:
            return processes, ", ".join(f"{name} exited with code {rc}" for name, rc in dead)
        state = _node_state(conf)
        if state == "idle":
            return processes, None
        time.sleep(0.25)
    return processes, f"node not idle after {START_TIMEOUT_S:.0f} s (sinfo: {state!r})"


class ClusterUnavailableError(Exception):
    """The cluster cannot run here; the message says why (with the daemons' log tail)."""


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[SlurmCluster]:
    """Start a cluster in the empty folder ``root``, ``SLURM_CONF`` set while it runs; stop it
    on exit. ClusterUnavailableError when it cannot start (used by the benchmarks too)."""
    reason = _why_not(root)
    if reason is not None:
        raise ClusterUnavailableError(reason)
    conf = _write_config(root)
    processes, failure = _start(root, conf)
    if failure is not None:
        _stop(processes)
        raise ClusterUnavailableError(
            f"Slurm test cluster did not start: {failure}\n{_log_tail(root)}"
        )
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        yield SlurmCluster(conf=conf, root=root)
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        _stop(processes)


@pytest.fixture(scope="session", name="slurm_cluster")
def slurm_cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A running one-node Slurm cluster (partition ``debug``), ``SLURM_CONF`` set for the
    session; skipped with the reason where Slurm cannot start here."""
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(running_cluster(tmp_path_factory.mktemp("slurm")))
        except ClusterUnavailableError as exc:
            pytest.skip(str(exc))
        yield cluster
