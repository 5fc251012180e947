"""The private Ray cluster, for real: loopback-only sockets, a private folder removed however the
run ends, and no processes left behind by a driver killed with SIGKILL."""

from __future__ import annotations

import ipaddress
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from funrl.config import load_config
from funrl.rewards.protocol import RewardError
from funrl.train import ray_session
from funrl.train.driver import Trainer

pytestmark = pytest.mark.slow

PLUGINS = Path(__file__).with_name("fault_plugins.py")
REPO = Path(__file__).resolve().parents[2]


def config(tmp_path, corpus, model, name, *extra):
    base = [
        f"run.output_dir={tmp_path / 'runs'}", f"run.name={name}",
        f"data.train_manifest={corpus / 'train.jsonl'}", f"model.path={model}",
        "train.steps=1", "train.prompts_per_step=2", "algorithm.group_size=2", "rollout.max_new_tokens=3",
        "policy.world_size=1", "checkpoint.every=0", "checkpoint.save_final=false",
        "cluster.num_cpus=2", "profile.enabled=false",
    ]
    return load_config(None, base + list(extra))


def listening(pids) -> list[tuple[int, str, str]]:
    """(pid, process name, address) of every listening TCP socket of these processes."""
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out += [(pid, p.name(), c.laddr.ip) for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    return out


def is_loopback(ip: str) -> bool:
    a = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped  # '::ffff:127.0.0.1': an IPv6 socket bound to IPv4 loopback
    return a.is_loopback


def ray_root(run_dir: Path) -> Path:
    link = run_dir / "ray"
    assert link.is_symlink(), "the run directory links to its Ray folder"
    return Path(os.readlink(link))


def wait_until(cond, what: str, limit: float = 60.0):
    """Poll ``cond`` (a liveness deadline, not a timing assertion)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"still not true after {limit:.0f} s: {what}")


def test_train_run_listens_on_loopback_only_and_removes_its_private_folder(tmp_path, tiny_corpus, tiny_model, ray_env):
    # two policy ranks: their torch.distributed rendezvous and gloo pairs listen too
    trainer = Trainer(config(tmp_path, tiny_corpus, tiny_model, "sock", "policy.world_size=2"))
    trainer.run_steps()  # a real step: every role has worked; the cluster is up
    root = ray_root(trainer.run_dir)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and root.stat().st_uid == os.getuid()

    procs = ray_session.session_processes(root)
    names = {p.name() for p in procs} | {" ".join(p.cmdline())[:40] for p in procs}
    assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names), names
    socks = listening([os.getpid()] + [p.pid for p in procs])
    owners = {name for _, name, _ in socks}
    assert {"gcs_server", "raylet"} <= owners and any(n.startswith("ray::") for n in owners), socks
    exposed = [s for s in socks if not is_loopback(s[2])]
    assert not exposed, f"listening beyond loopback: {exposed}"

    trainer.finish()
    assert not root.exists() and not (trainer.run_dir / "ray").exists()
    assert ray_session.session_processes(root) == []


def test_a_run_that_raises_removes_its_ray_folder_and_processes(tmp_path, tiny_corpus, tiny_model, ray_env):
    cfg = config(tmp_path, tiny_corpus, tiny_model, "boom",
                 f"rewards.components=[{{name: accuracy}}, {{name: '{PLUGINS}:explode'}}]")
    trainer = Trainer(cfg)
    root = ray_root(trainer.run_dir)
    assert root.is_dir()
    with pytest.raises(RewardError):
        trainer.fit()
    assert not root.exists() and not (trainer.run_dir / "ray").exists()
    assert ray_session.session_processes(root) == []


# A driver that imports Ray *before* funrl (so funrl's import-time setting cannot help), starts
# the private cluster as `funrl train` does, makes one actor and waits to be killed.
DRIVER = """
import os, sys, time
import ray  # first, on purpose
from pathlib import Path
from funrl.train.cluster import start_ray
from funrl.train.config import ClusterConfig
start_ray(ClusterConfig(num_cpus=1), Path(sys.argv[1]), {})

@ray.remote(num_cpus=0)
class A:
    def pid(self):
        return os.getpid()

a = A.remote()
print("READY", ray.get(a.pid.remote()), flush=True)
time.sleep(600)
"""


def start_driver(run_dir: Path) -> tuple[subprocess.Popen, Path, list[int]]:
    run_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    drv = subprocess.Popen([sys.executable, "-c", DRIVER, str(run_dir)], stdout=subprocess.PIPE, text=True,
                           cwd=REPO, env=env)
    line = drv.stdout.readline()
    assert line.startswith("READY"), f"the driver did not start: {line!r}"
    root = ray_root(run_dir)
    procs = ray_session.session_processes(root)
    return drv, root, [p.pid for p in procs if p.pid != drv.pid]


def test_funrl_train_cli_listens_on_loopback_and_leaves_nothing_when_killed(tmp_path, tiny_corpus, tiny_model):
    """A real ``funrl train`` process: its sockets and its Ray's are loopback-only while it trains;
    after ``kill -9`` of it the reaper ends the agents and workers and removes the private folder."""
    conf = tmp_path / "run.yaml"
    conf.write_text(
        f"run: {{output_dir: '{tmp_path / 'runs'}', name: cli}}\n"
        f"data: {{train_manifest: '{tiny_corpus / 'train.jsonl'}'}}\nmodel: {{path: '{tiny_model}'}}\n"
        "train: {steps: 1000, prompts_per_step: 2}\nalgorithm: {group_size: 2}\nrollout: {max_new_tokens: 3}\n"
        "policy: {world_size: 1}\ncheckpoint: {every: 0, save_final: false}\ncluster: {num_cpus: 2}\n"
        "profile: {enabled: false}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    drv = subprocess.Popen([sys.executable, "-m", "funrl", "train", str(conf)], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "runs" / "cli"
    try:
        wait_until(lambda: (run_dir / "metrics.jsonl").is_file() and (run_dir / "metrics.jsonl").stat().st_size > 0,
                   "the CLI run logged its first step", limit=300)
        root = ray_root(run_dir)
        procs = ray_session.session_processes(root)
        pids = [p.pid for p in procs if p.pid != drv.pid and "funrl.train.ray_session" not in " ".join(p.cmdline())]
        assert any("funrl.train.ray_session" in " ".join(p.cmdline()) for p in procs), "the reaper watches the driver"
        socks = listening([drv.pid] + pids)
        owners = {name for _, name, _ in socks}
        assert {"gcs_server", "raylet"} <= owners and any(n.startswith("ray::") for n in owners), socks
        assert all(is_loopback(ip) for _, _, ip in socks), socks
    finally:
        drv.send_signal(signal.SIGKILL)
        drv.wait()
    # only the reaper removes the folder (Ray never does), and it ends the processes first
    wait_until(lambda: not root.exists(), f"{root} removed by the reaper")
    assert not any(ray_session.alive(p) for p in pids), "a process of the killed driver's Ray is still running"


def test_next_start_ends_the_orphans_of_a_killed_driver(tmp_path, caplog):
    """The driver and its reaper are both killed; the next start in the run dir ends what is left."""
    run_dir = tmp_path / "run"
    drv, root, pids = start_driver(run_dir)
    reaper = [p for p in ray_session.session_processes(root) if "funrl.train.ray_session" in " ".join(p.cmdline())]
    assert len(reaper) == 1
    with pytest.raises(ray_session.RunDirInUse) as e:  # while that driver runs, a second start is refused
        ray_session.end_orphans(run_dir)
    assert str(drv.pid) in str(e.value) and all(ray_session.alive(p) for p in [drv.pid, reaper[0].pid])
    reaper[0].send_signal(signal.SIGKILL)
    drv.send_signal(signal.SIGKILL)
    drv.wait()
    reaper[0].wait()
    with caplog.at_level("WARNING", logger="funrl.train.ray_session"):
        killed = ray_session.end_orphans(run_dir)
    assert killed, "Ray left no process behind after its driver was killed: nothing ended"
    assert set(killed) <= set(pids)
    assert not any(ray_session.alive(p) for p in pids)
    assert not root.exists() and not (run_dir / "ray").exists()
    assert "previous run's Ray session" in caplog.text and str(killed[0]) in caplog.text


def test_token_auth_keeps_out_a_client_without_the_token(tmp_path, ray_env):
    """Loopback keeps other hosts out; Ray's token keeps out other users of this host. A client
    with a wrong token, or with authentication turned off, cannot attach to a private cluster;
    one with the user's token can (the control: the cluster is reachable, the token is what
    decides). The token file is the user's alone."""
    import secrets

    import ray
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    from funrl.train.cluster import start_ray
    from funrl.train.config import ClusterConfig

    (tmp_path / "run").mkdir()
    session = start_ray(ClusterConfig(num_cpus=1), tmp_path / "run", {})
    try:
        assert is_token_auth_enabled()
        token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
        assert token.is_file() and stat.S_IMODE(token.stat().st_mode) == 0o600
        addr = ray.get_runtime_context().gcs_address
        assert is_loopback(addr.rsplit(":", 1)[0])
        attach = f"import ray; ray.init(address={addr!r}); print('ATTACHED')"

        def client(**env):
            r = subprocess.run([sys.executable, "-c", attach], env={**os.environ, **env},
                               capture_output=True, text=True, timeout=120)
            return r.returncode, "ATTACHED" in r.stdout

        assert client(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16)) == (1, False)
        assert client(RAY_AUTH_MODE="disabled") == (1, False)
        assert client() == (0, True)
    finally:
        session.end()
