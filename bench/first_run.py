"""First run: how long `./dev run` takes from a finished install to /readyz answering 200.

Runs what `./dev run` runs after its install step, in a fresh var directory (a new SQLite
database, new development keys), each step timed: migrate, load_demo, run_pipeline --sync,
demo_info, then runserver until /readyz answers. Prints the time of each step, the total
(target, issue 17: under 3 minutes on the project's 2-core machine; it took 27 minutes
before) and how many log lines each step wrote (the demo load wrote 1,058 INFO lines).

    python bench/first_run.py [--customers 3000] [--keep]

`--profile` also writes a cProfile of load_demo to var/bench/load_demo.prof and prints its
top entries (where the load's time goes).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def step(name: str, args: list[str], env: dict) -> tuple[float, int]:
    started, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - started, children_cpu() - cpu
    if done.returncode:
        sys.exit(f"{name} failed: {done.stderr.strip().splitlines()[-1:]}")
    lines = len(done.stdout.splitlines()) + len(done.stderr.splitlines())
    # CPU time as well: on a shared machine the wall time says more about the neighbours.
    print(f"{name:<22} {elapsed:>7.1f} s  ({cpu:.1f} s CPU; {lines} lines of output)")
    return elapsed, lines


def until_ready(env: dict, port: int) -> float:
    started = time.perf_counter()
    server = subprocess.Popen([PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None:
                sys.exit("runserver stopped before /readyz answered")
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    elapsed = time.perf_counter() - started
    print(f"{'runserver → /readyz':<22} {elapsed:>7.1f} s")
    return elapsed


def profile_load(env: dict, customers: int) -> None:
    out = ROOT / "var" / "bench" / "load_demo.prof"
    out.parent.mkdir(parents=True, exist_ok=True)
    code = ("import cProfile, django, os; django.setup(); from cdp.demo.loader import demo_load; "
            f"cProfile.run('demo_load(customers={customers})', {str(out)!r})")
    subprocess.run([PYTHON, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "cdp.settings"},
                   check=True, capture_output=True)
    import pstats

    print(f"\nload_demo profile ({out}), by cumulative time:")
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(r"cdp|consent|personalization", 25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--profile", action="store_true", help="profile load_demo on a second fresh database")
    parser.add_argument("--keep", action="store_true", help="keep the var directory")
    args = parser.parse_args()
    var = tempfile.mkdtemp(prefix="tessera-first-run-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    env.update(TESSERA_VAR_DIR=var, PORT=str(port))
    total = 0.0
    total += step("migrate", ["migrate", "--noinput"], env)[0]
    total += step("load_demo", ["load_demo", "--customers", str(args.customers)], env)[0]
    total += step("run_pipeline --sync", ["run_pipeline", "--sync"], env)[0]
    total += step("demo_info", ["demo_info", "--port", str(port)], env)[0]
    total += until_ready(env, port)
    print(f"{'total to /readyz':<22} {total:>7.1f} s   (target < 180 s; before issue 17: 27 min on a busy machine; "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    rerun = step("load_demo (rerun)", ["load_demo", "--customers", str(args.customers)], env)[0]
    print(f"load_demo rerun: {rerun:.1f} s (changes nothing)")
    if args.profile:
        profile_env = {**env, "TESSERA_VAR_DIR": tempfile.mkdtemp(prefix="tessera-first-run-profile-")}
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=profile_env, check=True,
                       capture_output=True)
        profile_load(profile_env, args.customers)
    if not args.keep:
        subprocess.run(["rm", "-rf", var], check=False)


if __name__ == "__main__":
    main()
