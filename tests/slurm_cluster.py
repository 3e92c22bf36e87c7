"""A throwaway single-node SLURM cluster for tests (a helper module: pytest does not collect it).

Everything lives under one base directory: munge key and socket, a private MariaDB, slurmdbd, slurmctld and
slurmd with their configs, state, logs and pid files. All daemons run as root in the foreground (no systemd)
on free localhost ports, so nothing of the host's own SLURM or MariaDB is touched. The node declares fake
GPUs (gres backed by harmless character devices such as /dev/null) so that jobs asking for ``--gpus`` can be
scheduled on a machine without any. ``accounting=False`` skips MariaDB and slurmdbd; Snakemake's SLURM plugin
then needs ``--slurm-status-command squeue`` (it would otherwise wait on sacct forever).

Clients (sbatch, sacct, Snakemake and its jobs) find this cluster through ``SLURM_CONF`` in ``cluster.env``;
every process of the cluster also carries ``CONVERGENCE_SLURM_TEST=<base>`` in its environment, which is how
``stop()`` finds job steps that outlived their daemons.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# Debian 12 packages that provide what the cluster needs (binary -> package).
BINARIES = {
    "munged": "munge",
    "mungekey": "munge",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "sbatch": "slurm-client",
    "sacct": "slurm-client",
    "sacctmgr": "slurm-client",
    "scontrol": "slurm-client",
    "srun": "slurm-client",
    "slurmdbd": "slurmdbd",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
}
DEB_PACKAGES = ["munge", "slurm-wlm", "slurmctld", "slurmd", "slurm-client", "slurmdbd", "mariadb-server"]
MARKER = "CONVERGENCE_SLURM_TEST"
FAKE_DEVICES = ["/dev/null", "/dev/zero", "/dev/full"]  # one per fake GPU


def _which(name: str) -> str | None:
    # daemons live in /usr/sbin, which a non-login PATH may lack
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if _which(b) is None]


def unavailable_reason(install: bool = True, timeout: float = 300) -> str | None:
    """None when a cluster can be started here; otherwise why not (after trying apt-get as root)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "a test SLURM cluster needs root (its daemons run as root)"
    missing = missing_binaries()
    if missing and install and shutil.which("apt-get"):
        packages = DEB_PACKAGES
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
        try:
            if subprocess.run(cmd, env=env, capture_output=True, timeout=timeout).returncode != 0:
                subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=timeout)
                subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
        missing = missing_binaries()
    if missing:
        packages = " ".join(sorted({BINARIES[b] for b in missing}))
        return f"SLURM binaries missing ({', '.join(missing)}); install: apt-get install {packages}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ClusterError(RuntimeError):
    pass


class SlurmCluster:
    """``with SlurmCluster() as c:`` starts munged, MariaDB, slurmdbd, slurmctld and slurmd; leaving stops them."""

    def __init__(self, base: Path | None = None, *, name: str = "convtest", partition: str = "debug",
                 gpus: int = 1, min_memory_mb: int = 16000, accounting: bool = True):
        if gpus > len(FAKE_DEVICES):
            raise ValueError(f"at most {len(FAKE_DEVICES)} fake GPUs")
        self.base = Path(base or tempfile.mkdtemp(prefix="convergence-slurm-")).resolve()
        self.name, self.partition, self.gpus = name, partition, gpus
        self.accounting = accounting
        self.min_memory_mb = min_memory_mb
        self.host = socket.gethostname().split(".")[0]
        self.ports = {k: _free_port() for k in ("slurmctld", "slurmd", "slurmdbd", "mysql")}
        self.etc, self.run, self.log, self.state = (self.base / d for d in ("etc", "run", "log", "state"))
        self.conf = self.etc / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.bin = self.base / "bin"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), MARKER: str(self.base),
                    "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        # strip settings that would point clients at another cluster
        for key in ("SLURM_JOB_ID", "SLURM_JOBID", "SBATCH_PARTITION", "SBATCH_ACCOUNT", "SLURM_CLUSTERS"):
            self.env.pop(key, None)

    # ---------------------------------------------------------------- configuration
    def _node_resources(self) -> tuple[int, int]:
        cpus, mem = os.cpu_count() or 1, 0
        out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True).stdout
        for token in out.split():
            key, _, value = token.partition("=")
            if key == "CPUs" and value.isdigit():
                cpus = int(value)
            elif key == "RealMemory" and value.isdigit():
                mem = int(value)
        # declared memory may exceed the real one (SlurmdParameters=config_overrides): rules ask for 8 GB
        return max(cpus, 2), max(mem, self.min_memory_mb)

    def _write_configs(self) -> None:
        for d in (self.etc, self.run, self.log, self.state / "ctld", self.state / "d", self.state / "db", self.bin):
            d.mkdir(parents=True, exist_ok=True)
        munge_socket = self.run / "munge.socket"
        cpus, mem = self._node_resources()
        accounting = [
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={self.ports['slurmdbd']}",
            # the munge socket for talking to slurmdbd (AuthInfo does not cover this connection)
            f"AccountingStoragePass={munge_socket}",
            "AccountingStorageTRES=gres/gpu",
            "AccountingStoreFlags=job_comment",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=30",
        ] if self.accounting else [
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
        ]
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        lines = [
            f"ClusterName={self.name}",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={self.ports['slurmctld']}",
            f"SlurmdPort={self.ports['slurmd']}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            f"StateSaveLocation={self.state / 'ctld'}",
            f"SlurmdSpoolDir={self.state / 'd'}",
            f"SlurmctldPidFile={self.run / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.run / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.log / 'slurmctld.log'}",
            f"SlurmdLogFile={self.log / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill",
            "ReturnToService=2",
            "MinJobAge=600",
            "DefMemPerCPU=1000",  # a job without --mem would otherwise hold the whole node's memory
            "SlurmdParameters=config_overrides",
            "JobCompType=jobcomp/none",
            "MailProg=/bin/true",
            *(["GresTypes=gpu"] if self.gpus else []),
            *accounting,
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem}{gres} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        gres_conf = self.etc / "gres.conf"
        # without File= the node is declared INVAL; harmless character devices stand in for GPUs
        gres_conf.write_text(
            f"NodeName={self.host} Name=gpu File={','.join(FAKE_DEVICES[:self.gpus])}\n" if self.gpus else ""
        )
        dbd = self.etc / "slurmdbd.conf"
        dbd.write_text("\n".join([
            "AuthType=auth/munge",
            f"AuthInfo=socket={munge_socket}",
            f"DbdHost={self.host}",
            "DbdAddr=127.0.0.1",
            f"DbdPort={self.ports['slurmdbd']}",
            "SlurmUser=root",
            f"PidFile={self.run / 'slurmdbd.pid'}",
            f"LogFile={self.log / 'slurmdbd.log'}",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={self.ports['mysql']}",
            "StorageUser=slurm",
            "StoragePass=unused",  # the private MariaDB runs with --skip-grant-tables
            "StorageLoc=slurm_acct_db",
        ]) + "\n")
        dbd.chmod(0o600)  # slurmdbd refuses a config readable by others

        # snakemake-executor-plugin-slurm-jobstep (0.6) drops every SLURM_* variable, SLURM_CONF included,
        # before its `srun` inside the allocation; a config outside /etc/slurm is then lost and srun falls
        # back to DNS SRV lookup. Clusters keep slurm.conf in the default place; this one cannot.
        shim = self.bin / "srun"
        shim.write_text(f'#!/bin/sh\nSLURM_CONF="${{SLURM_CONF:-{self.conf}}}" exec {_which("srun")} "$@"\n')
        shim.chmod(0o755)

    # ---------------------------------------------------------------- processes
    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.log / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True,
        )
        out.close()

    def _wait(self, what: str, ready, timeout: float, proc: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if proc and self.procs[proc].poll() is not None:
                raise ClusterError(f"{proc} exited ({self.procs[proc].returncode}) before {what}:\n{self.logs(proc)}")
            time.sleep(0.1)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.logs(proc)}")

    def logs(self, name: str | None = None, tail: int = 3000) -> str:
        names = [name] if name else sorted({p.stem for p in self.log.glob("*")})
        text = []
        for n in names:
            for path in (self.log / f"{n}.out", self.log / f"{n}.log"):
                if path.exists():
                    text.append(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(text)

    def cmd(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        proc = subprocess.run([_which(argv[0]) or argv[0], *argv[1:]], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def start(self, timeout: float = 60) -> "SlurmCluster":
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        self._write_configs()
        key = self.etc / "munge.key"
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}", "--bits=1024"], check=True,
                       capture_output=True)
        munge_socket = self.run / "munge.socket"
        self._spawn("munged", [
            _which("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={munge_socket}",
            f"--pid-file={self.run / 'munged.pid'}", f"--seed-file={self.state / 'munge.seed'}",
            f"--log-file={self.log / 'munged.log'}",
        ])
        self._wait("munged's socket", munge_socket.exists, timeout, "munged")

        if self.accounting:
            datadir = self.state / "db"
            small = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"]
            init = subprocess.run(
                [_which("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", "--user=root",
                 "--auth-root-authentication-method=normal", "--skip-test-db", *small],
                capture_output=True, text=True, timeout=timeout,
            )
            if init.returncode != 0:
                raise ClusterError(f"mariadb-install-db failed:\n{init.stdout[-2000:]}{init.stderr[-2000:]}")
            self._spawn("mariadbd", [
                _which("mariadbd"), "--no-defaults", f"--datadir={datadir}", "--user=root",
                f"--socket={self.run / 'mysql.sock'}", f"--port={self.ports['mysql']}",
                "--bind-address=127.0.0.1", f"--pid-file={self.run / 'mariadbd.pid'}",
                f"--log-error={self.log / 'mariadbd.log'}", "--skip-grant-tables", "--skip-log-bin", *small,
            ])
            self._wait("MariaDB", lambda: _port_open(self.ports["mysql"]), timeout, "mariadbd")
            self._spawn("slurmdbd", [_which("slurmdbd"), "-D"])
            self._wait("slurmdbd", lambda: _port_open(self.ports["slurmdbd"]), timeout, "slurmdbd")
            # no `sacctmgr add cluster`: slurmctld registers its cluster with slurmdbd when it starts

        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self.cmd("scontrol", "ping", check=False).returncode == 0,
                   timeout, "slurmctld")
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", self.host, "-f", str(self.conf)])
        self._wait("the node to become idle", self._node_idle, timeout, "slurmd")

    def _node_idle(self) -> bool:
        out = self.cmd("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
        return out.rstrip("*") in {"idle", "mixed", "allocated"}

    def stop(self, timeout: float = 20) -> None:
        """Cancel jobs, stop daemons in reverse start order, then end any process still marked as ours."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.cmd("scancel", "--full", "--user", "root", check=False, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()
        for pid in self.stray_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # the database files are ~50 MB; configs and logs stay for post-mortems
        shutil.rmtree(self.state / "db", ignore_errors=True)

    def stray_pids(self) -> list[int]:
        """Processes (job steps, job scripts) whose environment marks them as belonging to this cluster."""
        needle = f"\0{MARKER}={self.base}\0".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = b"\0" + (entry / "environ").read_bytes() + b"\0"
            except OSError:
                continue
            if needle in environ:
                pids.append(int(entry.name))
        return pids

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- queries
    def accounting_records(self) -> list[dict[str, str]]:
        """Allocations recorded by slurmdbd for this cluster (one row per job, no steps)."""
        fields = ["JobID", "JobName", "Partition", "State", "ExitCode", "Comment", "AllocTRES", "ReqTRES"]
        out = self.cmd("sacct", "-a", "-X", "-n", "-P", "-S", "now-1days", "-o", ",".join(fields)).stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
