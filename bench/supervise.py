#!/usr/bin/env python3
"""Supervision benchmarks, ours against daemontools and s6 in one run.

restart latency: SIGKILL the service process, time until supervise has a new child
                 (read from /proc/<supervise>/task/<pid>/children: the same probe for all).
memory:          Private_Dirty of one supervise process with its service up.
svscan 500:      time from starting the scanner until 500 services' run scripts have run.

usage: supervise.py OUR_BINARY_DIR [--services N] [--restarts N]
"""
import os, shutil, signal, statistics, subprocess, sys, tempfile, time

ours_dir = os.path.abspath(sys.argv[1])
services = int(sys.argv[sys.argv.index("--services") + 1]) if "--services" in sys.argv else 500
restarts = int(sys.argv[sys.argv.index("--restarts") + 1]) if "--restarts" in sys.argv else 30

links = tempfile.mkdtemp(prefix="bench-links.")
for name in ("supervise", "svscan"):
    os.symlink(os.path.join(ours_dir, "indimail"), os.path.join(links, name))

SUPERVISORS = {
    "indimail supervise": [os.path.join(links, "supervise")],
    "daemontools supervise": ["/usr/bin/supervise"],
    "s6-supervise": ["/usr/bin/s6-supervise"],
}
SCANNERS = {
    "indimail svscan": [os.path.join(links, "svscan")],
    "daemontools svscan": ["/usr/bin/svscan"],
    "s6-svscan": ["/usr/bin/s6-svscan"],
}
ENV = dict(os.environ, DISABLE_RUN="1", PATH=links + ":" + os.environ.get("PATH", "/usr/bin:/bin"))


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.0005)
    return None


def private_dirty(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    return -1


def bench_supervisor(name, argv):
    top = tempfile.mkdtemp(prefix="bench-sv.")
    svc = os.path.join(top, "s")
    os.mkdir(svc)
    with open(os.path.join(svc, "run"), "w") as f:
        f.write("#!/bin/sh\nexec sleep 1000\n")
    os.chmod(os.path.join(svc, "run"), 0o755)
    proc = subprocess.Popen(argv + ["s"], cwd=top, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first = wait_for(lambda: children(proc.pid))
        assert first, f"{name}: service never started"
        time.sleep(1.5)
        memory = private_dirty(proc.pid)
        samples = []
        for _ in range(restarts):
            old = children(proc.pid)
            time.sleep(1.15)  # daemontools waits 1 s after each start; stay above it
            start = time.perf_counter()
            for pid in old:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            new = wait_for(lambda: [p for p in children(proc.pid) if p not in old])
            if new:
                samples.append((time.perf_counter() - start) * 1000)
        return memory, samples
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        shutil.rmtree(top, ignore_errors=True)


def bench_scanner(name, argv):
    top = tempfile.mkdtemp(prefix="bench-scan.")
    scan = os.path.join(top, "service")
    up = os.path.join(top, "up")
    os.mkdir(scan)
    os.mkdir(up)
    for i in range(services):
        d = os.path.join(scan, f"s{i}")
        os.mkdir(d)
        with open(os.path.join(d, "run"), "w") as f:
            f.write(f"#!/bin/sh\n: > {up}/s{i}\nexec sleep 1000\n")
        os.chmod(os.path.join(d, "run"), 0o755)
    start = time.perf_counter()
    proc = subprocess.Popen(argv + [scan], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        done = wait_for(lambda: len(os.listdir(up)) >= services, timeout=120)
        elapsed = time.perf_counter() - start
        return elapsed if done else None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        # supervise processes run in svscan's session: kill them all
        subprocess.run(["pkill", "-KILL", "-s", str(proc.pid)], check=False)
        proc.wait()
        time.sleep(0.5)
        shutil.rmtree(top, ignore_errors=True)


print(f"### Supervision (restart latency: {restarts} SIGKILLs each; {services} services for svscan)")
print()
print("| supervisor | restart median ms | p90 ms | min ms | Private_Dirty kB |")
print("|---|---:|---:|---:|---:|")
medians = {}
for name, argv in SUPERVISORS.items():
    if not os.access(argv[0], os.X_OK):
        print(f"| {name} | missing | | | |")
        continue
    memory, samples = bench_supervisor(name, argv)
    samples.sort()
    med = statistics.median(samples)
    medians[name] = med
    p90 = samples[int(len(samples) * 0.9) - 1]
    print(f"| {name} | {med:.2f} | {p90:.2f} | {samples[0]:.2f} | {memory} |")
print()
if "daemontools supervise" in medians and "indimail supervise" in medians:
    print(f"Restart latency, ours / daemontools: {medians['indimail supervise'] / medians['daemontools supervise']:.2f}x (target <= 1.2x)")
    print()
print(f"| scanner | seconds until {services} services ran |")
print("|---|---:|")
for name, argv in SCANNERS.items():
    if not os.access(argv[0], os.X_OK):
        print(f"| {name} | missing |")
        continue
    t = bench_scanner(name, argv)
    print(f"| {name} | {'timeout' if t is None else f'{t:.2f}'} |")
shutil.rmtree(links, ignore_errors=True)
