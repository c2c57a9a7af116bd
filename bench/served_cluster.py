"""A served cluster for the bench harnesses: `mpirun -np RANKS argent serve --config FILE` in a
process group of its own, up once its gateway answers a health request, stopped with SIGTERM
(SIGKILL after 60 s), and the YAML config it serves. Used by scale_bench.py, gpu_scaling.py and
fault_recovery.py."""

import os
import shlex
import signal
import subprocess
import time


def write_config(path, sections):
    """An argent YAML config from {section: {key: value}}; a list value is written inline."""
    with open(path, "w") as f:
        for section, keys in sections.items():
            f.write(f"{section}:\n")
            for key, value in keys.items():
                if isinstance(value, (list, tuple)):
                    value = "[" + ", ".join(map(str, value)) + "]"
                f.write(f"  {key}: {value}\n")


class ServedCluster:
    def __init__(self, argent, config, endpoint, ranks, log_path, mpirun="mpirun", mpirun_args="",
                 startup_s=120.0):
        self.endpoint = endpoint
        self.log_path = log_path
        cmd = [mpirun, "--oversubscribe", "--bind-to", "none", *shlex.split(mpirun_args),
               "-np", str(ranks), argent, "serve", "--config", config]
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        env.setdefault("NCCL_NVLS_ENABLE", "0")  # multicast off, as on the lent GPU machines
        print("+", " ".join(cmd), flush=True)
        with open(log_path, "w") as log:
            self.server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                           start_new_session=True)
        from argent_client import Client
        t0 = time.time()
        with Client(endpoint, timeout_s=2) as c:
            while True:
                try:
                    c.health()
                    break
                except TimeoutError:
                    if time.time() - t0 > startup_s or self.server.poll() is not None:
                        self.stop()
                        raise SystemExit(f"{ranks} ranks did not come up; see {log_path}")
        self.startup_s = time.time() - t0

    def stop(self):
        try:  # the whole group: ranks mpirun left behind too
            os.killpg(self.server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
