#!/usr/bin/env python3
"""Network-layer benchmarks: our tcpserver against Debian's ucspi-tcp and stunnel4, one run.

connections/s:  N client processes each loop connect 127.0.0.1:port, half-close, read until
                EOF, close (SO_LINGER 0, so no TIME_WAIT pile-up); counted over --seconds
                after --warmup seconds. The same client for every server.
TLS handshakes/s: the same loop with a full TLS handshake per connection (fresh handshake,
                no session tickets, no resumption), read the line until EOF, close.

Servers run in their own process groups and are all killed at the end.

usage: tcpserver.py OUR_BINARY_DIR [--seconds 10] [--warmup 2] [--workers 16] [--repeat 2]
"""
import multiprocessing as mp
import os, shutil, signal, socket, ssl, struct, subprocess, sys, tempfile, time


def arg(name, default, kind=int):
    return kind(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


ours_dir = os.path.abspath(sys.argv[1])
SECONDS = arg("--seconds", 10.0, float)
WARMUP = arg("--warmup", 2.0, float)
WORKERS = arg("--workers", 16)
REPEAT = arg("--repeat", 2)
BASE = os.path.join(ours_dir, "indimail")  # as installed: tcpserver links to the static binary

work = tempfile.mkdtemp(prefix="bench-net.")
links = os.path.join(work, "bin")
os.mkdir(links)
for name in ("tcpserver", "addcr"):
    os.symlink(BASE, os.path.join(links, name))
OUR_ENV = dict(os.environ, PATH=links + ":/usr/bin:/bin", MAXPERIP="0")
PLAIN_ENV = dict(os.environ, PATH="/usr/bin:/bin")
COMMON = ["-H", "-R", "-l", "0", "-c", "100", "-b", "1024"]  # no DNS, no ident, 100 children

# Certificate: EC P-256, self-signed, chain + key in one PEM (as -n wants).
cert = os.path.join(work, "cert.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-subj", "/CN=localhost", "-days", "2", "-keyout", os.path.join(work, "key.pem"),
                "-out", os.path.join(work, "crt.pem")], check=True, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
with open(cert, "w") as out:
    for part in ("crt.pem", "key.pem"):
        with open(os.path.join(work, part)) as f:
            out.write(f.read())

servers = []  # live Popen objects, each a process group leader


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop(proc):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=3)
            break
        except subprocess.TimeoutExpired:
            pass
    # children that outlived the leader are still in the group
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc in servers:
        servers.remove(proc)


def start(argv, env, port):
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "server.err"), "ab"), start_new_session=True)
    servers.append(proc)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            assert proc.poll() is None, f"server exited: {argv}"
            time.sleep(0.05)
    raise RuntimeError(f"server never listened: {argv}")


LINGER0 = struct.pack("ii", 1, 0)


def plain_once(port, _ctx):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        s.connect(("127.0.0.1", port))
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                return data
            data += b
    finally:
        s.close()


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.options |= ssl.OP_NO_TICKET  # no session to resume: every connection is a full handshake
    return ctx


def tls_once(port, ctx):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    try:
        raw.connect(("127.0.0.1", port))
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        data = b""
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
        except (ssl.SSLEOFError, ConnectionResetError):  # EOF without close_notify
            pass
        return data
    finally:
        raw.close()


def worker(kind, port, expect, slot, counts, errors, stop_flag):
    once = tls_once if kind == "tls" else plain_once
    ctx = client_context() if kind == "tls" else None
    while not stop_flag.value:
        try:
            ok = once(port, ctx) == expect
        except OSError:
            ok = False
        if ok:
            counts[slot] += 1
        else:
            errors[slot] += 1


def load(kind, port, expect):
    """Connections per second over SECONDS after WARMUP, with WORKERS client processes."""
    counts = mp.Array("q", WORKERS, lock=False)
    errors = mp.Array("q", WORKERS, lock=False)
    stop_flag = mp.Value("b", 0, lock=False)
    procs = [mp.Process(target=worker, args=(kind, port, expect, i, counts, errors, stop_flag))
             for i in range(WORKERS)]
    for p in procs:
        p.start()
    time.sleep(WARMUP)
    c0, e0, t0 = sum(counts), sum(errors), time.perf_counter()
    time.sleep(SECONDS)
    c1, e1, t1 = sum(counts), sum(errors), time.perf_counter()
    stop_flag.value = 1
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    return (c1 - c0) / (t1 - t0), e1 - e0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def mappings(pid):
    with open(f"/proc/{pid}/maps") as f:
        return sum(1 for _ in f)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_case(name, argv_for_port, env, kind, expect, info):
    rates = []
    for _ in range(REPEAT):
        port = free_port()
        proc = start(argv_for_port(port), env, port)
        try:
            if kind == "tls" and "protocol" not in info:
                s = client_context().wrap_socket(socket.create_connection(("127.0.0.1", port)))
                info["protocol"] = f"{s.version()} {s.cipher()[0]}"
                s.close()
            before = loadavg()
            rate, errs = load(kind, port, expect)
            info.setdefault("rss", (rss_kb(proc.pid), mappings(proc.pid)))
            rates.append((rate, errs, before))
        finally:
            stop(proc)
        print(f"  {name}: {rate:.0f}/s errors={errs} load={before}", file=sys.stderr)
    return rates


def stunnel_argv(port):
    conf = os.path.join(work, f"stunnel-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"foreground = yes\npid =\ndebug = 0\nsyslog = no\n"
                f"[echo]\naccept = 127.0.0.1:{port}\ncert = {cert}\nexec = /bin/echo\nexecArgs = echo ok\n"
                f"TIMEOUTclose = 0\n")
    return ["stunnel4", conf]


def main():
    our = [os.path.join(links, "tcpserver")] + COMMON + ["-C", "0"]
    deb = ["/usr/bin/tcpserver"] + COMMON
    plain_cases = [
        ("Debian tcpserver, /bin/echo ok (exec)", lambda p: deb + ["127.0.0.1", str(p), "/bin/echo", "ok"],
         PLAIN_ENV, b"ok\n"),
        ("our tcpserver, /bin/echo ok (exec)", lambda p: our + ["127.0.0.1", str(p), "/bin/echo", "ok"],
         OUR_ENV, b"ok\n"),
        ("our tcpserver, addcr (in-process)", lambda p: our + ["127.0.0.1", str(p), "addcr"], OUR_ENV, b""),
        ("Debian tcpserver, /usr/bin/addcr (exec, C)", lambda p: deb + ["127.0.0.1", str(p), "/usr/bin/addcr"],
         PLAIN_ENV, b""),
    ]
    tls_cases = [
        ("stunnel4, exec /bin/echo ok", stunnel_argv, PLAIN_ENV, b"ok\n"),
        ("our tcpserver -n, /bin/echo ok (exec)",
         lambda p: our + ["-n", cert, "127.0.0.1", str(p), "/bin/echo", "ok"], OUR_ENV, b"ok\n"),
    ]  # no in-process TLS case: a TLS client cannot half-close, so addcr would wait for input
    results = {}
    infos = {}
    try:
        for kind, cases in (("plain", plain_cases), ("tls", tls_cases)):
            for name, argv, env, expect in cases:
                infos[name] = {}
                results[name] = run_case(name, argv, env, "tls" if kind == "tls" else "plain", expect, infos[name])
    finally:
        for proc in list(servers):
            stop(proc)

    def best(name):
        return max(r[0] for r in results[name])

    def table(title, names, unit):
        print(f"### {title}")
        print()
        runs = " | ".join(f"run {i + 1} {unit}" for i in range(REPEAT))
        print(f"| server | {runs} | errors | load before runs | server RSS kB (maps) |")
        print("|---|" + "---:|" * REPEAT + "---:|---|---:|")
        for n in names:
            rs = results[n]
            cells = " | ".join(f"{r[0]:.0f}" for r in rs)
            rss, maps = infos[n].get("rss", (-1, -1))
            print(f"| {n} | {cells} | {sum(r[1] for r in rs)} | {' / '.join(r[2] for r in rs)} | {rss} ({maps}) |")
        print()

    print(f"Client: {WORKERS} Python processes, {WARMUP:g} s warm-up then {SECONDS:g} s counted, "
          f"{REPEAT} runs per case; servers `-H -R -l 0 -c 100 -b 1024` (ours also `-C 0`, MAXPERIP=0).")
    print()
    table("Connections per second (loopback)", [c[0] for c in plain_cases], "conn/s")
    deb_rate = best(plain_cases[0][0])
    print("Ratios use the better run of each case.")
    print()
    print(f"- ours exec / Debian: **{best(plain_cases[1][0]) / deb_rate:.2f}x** (target ≥ 1.0x); "
          f"run by run: {', '.join(f'{a[0] / b[0]:.2f}x' for a, b in zip(results[plain_cases[1][0]], results[plain_cases[0][0]]))}")
    print(f"- ours in-process / Debian: **{best(plain_cases[2][0]) / deb_rate:.2f}x** (target ≥ 2x); "
          f"run by run: {', '.join(f'{a[0] / b[0]:.2f}x' for a, b in zip(results[plain_cases[2][0]], results[plain_cases[0][0]]))}")
    print()
    table("TLS handshakes per second (loopback, full handshake each, EC P-256 certificate)",
          [c[0] for c in tls_cases], "hs/s")
    print(f"Negotiated: " + "; ".join(f"{n}: {infos[n].get('protocol', '?')}" for n, *_ in tls_cases))
    print()
    st = best(tls_cases[0][0])
    print(f"- ours exec / stunnel4: **{best(tls_cases[1][0]) / st:.2f}x** (better run of each); run by run: "
          f"{', '.join(f'{a[0] / b[0]:.2f}x' for a, b in zip(results[tls_cases[1][0]], results[tls_cases[0][0]]))}")
    print()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
