"""A Spark standalone cluster on 127.0.0.1 from the pip-installed pyspark, for the cluster tests.

The master and workers are `spark-class` JVMs started in their own process groups; executors
(and the Python workers they fork) run under the workers. `stop()` ends every process the
cluster started: the process groups first, then any process still working in the cluster's
directories (a PySpark daemon makes its own process group).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent
ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
FAKE_DISCOVERY = ROOT / "conf" / "fake-gpu-discovery.sh"
LOCAL_DEFAULTS = ROOT / "conf" / "spark-defaults.local.conf"  # executor exclusion


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def spark_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of the cluster's JVMs and of spark-submit: SPARK_CONF_DIR holds only the
    local cluster's spark-defaults (conf/spark-defaults.local.conf), nothing from elsewhere."""
    conf_dir = workdir / "spark-conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "spark-defaults.conf").write_text(LOCAL_DEFAULTS.read_text())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPARK_", "PYSPARK_")) and k != "PYTHONPATH"}
    env.update(SPARK_HOME=str(SPARK_HOME), SPARK_CONF_DIR=str(conf_dir), SPARK_LOCAL_IP=HOST,
               SPARK_LOCAL_HOSTNAME=HOST, SPARK_LOG_DIR=str(workdir / "logs"))
    env.update(extra)
    return env


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group (JVM shutdown hooks stop executors), then SIGKILL what is left.
    The group is the one `start_new_session=True` made: its id is the leader's pid."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait
        while time.time() < deadline:
            if proc.poll() is not None and not _group_alive(proc.pid):
                break
            time.sleep(0.2)
        else:
            continue
        break
    if proc.poll() is None:
        proc.wait(timeout=10)


def processes_under(directory: Path) -> list[int]:
    """Pids whose working directory lies under `directory` (executors' Python workers)."""
    found = []
    prefix = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == prefix or cwd.startswith(prefix + "/"):
            found.append(int(entry.name))
    return found


@dataclass
class Standalone:
    workdir: Path
    workers: int = 2
    worker_cores: int = 2
    worker_memory: str = "4g"
    worker_opts: str = ""
    worker_env: dict[int, dict[str, str]] = field(default_factory=dict)  # by worker index
    master_port: int = 0  # read from the master's log once it started
    ui_port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    def start(self, timeout: float = 120.0) -> Standalone:
        """Ports are chosen by the JVMs (port 0) and read back from the master's log, so
        clusters of concurrent test runs never take each other's ports."""
        deadline = time.time() + timeout
        self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", HOST,
                    "--port", "0", "--webui-port", "0")
        self.master_port = int(self._wait_for_log(
            "master", r"Starting Spark master at spark://[\d.]+:(\d+)", deadline))
        self.ui_port = int(self._wait_for_log(
            "master", r"Bound MasterWebUI to .* started at http://[\d.]+:(\d+)", deadline))
        for i in range(self.workers):
            work = self.workdir / f"worker-{i}"
            work.mkdir(parents=True, exist_ok=True)
            self._spawn(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", self.url,
                        "--host", HOST, "--port", "0", "--webui-port", "0",
                        "--cores", str(self.worker_cores), "--memory", self.worker_memory,
                        "--work-dir", str(work), env=self.worker_env.get(i, {}))
        while time.time() < deadline:
            self._check_alive()
            state = self.state()
            if state and state.get("aliveworkers") == self.workers:
                return self
            time.sleep(1.0)
        raise TimeoutError(f"{self.workers} workers not alive after {timeout}s:\n{self.logs()}")

    def _check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[1]} exited {p.returncode}:\n{self.logs()}")

    def _wait_for_log(self, name: str, pattern: str, deadline: float) -> str:
        log = self.workdir / f"{name}.log"
        while time.time() < deadline:
            self._check_alive()
            match = re.search(pattern, log.read_text(errors="replace"))
            if match:
                return match.group(1)
            time.sleep(0.5)
        raise TimeoutError(f"{name}: no line matching {pattern!r}:\n{self.logs()}")

    def state(self) -> dict | None:
        """The master's JSON status (workers, cores, resources, applications)."""
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.ui_port}/json/", timeout=5) as r:
                return json.load(r)
        except (OSError, ValueError):
            return None

    def stop(self) -> list[int]:
        """Stop everything; returns the pids that had to be killed after the groups were gone."""
        for proc in reversed(self.procs):
            kill_group(proc)
        for proc in self.procs:
            proc.log.close()  # type: ignore[attr-defined]
        leftovers = processes_under(self.workdir)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return leftovers

    def logs(self, tail: int = 4000) -> str:
        out = []
        for path in sorted(self.workdir.glob("*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def _spawn(self, name: str, main_class: str, *args: str, env: dict | None = None) -> None:
        """Start a daemon; `env` adds to its environment (a worker's executors inherit it)."""
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 (closed in stop())
        env = spark_env(self.workdir, SPARK_WORKER_OPTS=self.worker_opts,
                        # no REST submission server: it would want the fixed port 6066
                        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false", **(env or {}))
        proc = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), main_class, *args],
                                env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)


def package_zip(dest: Path) -> Path:
    """`mga_spark.zip` for `--py-files`, as the README tells cluster users to build it."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((ROOT / "mga_spark").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(ROOT).as_posix())
    return dest


def deps_only_python(directory: Path) -> Path:
    """A Python that sees the project venv's dependencies (vLLM, torch, pyspark, ...) but not the
    project itself: stands for a cluster node's image or packed venv, so that `mga_spark` can
    only come from what spark-submit ships (`--py-files`)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True,
                   timeout=120)
    python = directory / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()
    import sysconfig

    # A path line in a .pth adds the directory but not the .pth files inside it, so the
    # project venv's editable-install hook for mga_spark is not loaded.
    Path(site, "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def run_bounded(argv: list[str], timeout: float, env: dict | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command in its own process group, stdout and stderr together in `.stdout`. The
    whole group is killed if it overruns `timeout`, and whatever it left behind when it ends."""
    proc = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc, grace=5.0)
        out, _ = proc.communicate()
        raise AssertionError(f"{Path(argv[0]).name} overran {timeout}s:\n{out[-6000:]}"
                             ) from None
    finally:
        kill_group(proc, grace=5.0)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def spark_submit(argv: list[str], workdir: Path, timeout: float, env: dict | None = None
                 ) -> subprocess.CompletedProcess:
    """Run `spark-submit` (client mode: the driver runs here) against a clean Spark env."""
    return run_bounded([SPARK_HOME / "bin" / "spark-submit", *argv], timeout,
                       spark_env(workdir, **(env or {})), workdir)
