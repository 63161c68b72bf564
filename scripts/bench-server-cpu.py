#!/usr/bin/env python3
"""CPU seconds and context switches of the oned servers per operation under oneha-bench.

    scripts/bench-server-cpu.py ONED_BINARY MODE [oneha-bench options]

Runs `oneha-bench MODE` (`$ONEHA_BENCH`, default target/release/oneha-bench) with ONEHA_ONED set
to ONED_BINARY, samples /proc of every process running that binary every 0.2 s, and reports, over
the steady part of the run (where the busiest server burns at least half its peak rate, less a
second at each end): the leader's (busiest server's) CPU seconds and context switches (all its
threads, voluntary and not) per operation, its thread count, and the CPU of all servers per 1k
operations. Alternate two binaries (A B A B) to compare them on a noisy machine."""
import os, subprocess, sys, time, re, glob

TICK = os.sysconf('SC_CLK_TCK')
BENCH = os.environ.get('ONEHA_BENCH', 'target/release/oneha-bench')

def procs(exe):
    out = []
    for d in glob.glob('/proc/[0-9]*'):
        try:
            if os.readlink(d + '/exe') == exe:
                out.append(int(d[6:]))
        except OSError:
            pass
    return out

def sample(pid):
    try:
        f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        cpu = (int(f[11]) + int(f[12])) / TICK
        cs = 0
        threads = 0
        for t in glob.glob(f'/proc/{pid}/task/*/status'):
            try:
                s = open(t).read()
            except OSError:
                continue
            threads += 1
            cs += int(re.search(r'^voluntary_ctxt_switches:\s+(\d+)', s, re.M).group(1))
            cs += int(re.search(r'^nonvoluntary_ctxt_switches:\s+(\d+)', s, re.M).group(1))
        return cpu, cs, threads
    except (OSError, AttributeError, IndexError):
        return None

def run(exe, mode, extra):
    env = dict(os.environ, ONEHA_ONED=exe)
    cmd = [BENCH, mode, '--secs', '10'] + (extra if '--clients' in extra else ['--clients', '32'] + extra)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = []  # (t, {pid: (cpu, cs, threads)})
    while p.poll() is None:
        now = time.time()
        snap = {}
        for pid in procs(exe):
            s = sample(pid)
            if s:
                snap[pid] = s
        samples.append((now, snap))
        time.sleep(0.2)
    out = p.stdout.read()
    return out, samples

def analyse(out, samples):
    m = re.search(r'([\d,\.]+)\s*ops/s', out)
    ops = float(m.group(1).replace(',', '')) if m else float('nan')
    # Steady state: samples where the busiest server burns at least half its peak rate.
    pids = set()
    for _, s in samples:
        pids |= set(s)
    best = None
    for pid in pids:
        pts = [(t, s[pid]) for t, s in samples if pid in s]
        rates = []
        for (t0, a), (t1, b) in zip(pts, pts[1:]):
            rates.append(((b[0] - a[0]) / (t1 - t0), t0, t1))
        if not rates:
            continue
        peak = max(r[0] for r in rates)
        busy = [r for r in rates if r[0] >= peak / 2]
        if not busy:
            continue
        start, end = busy[0][1] + 1.0, busy[-1][2] - 1.0
        if end - start < 3:
            start, end = busy[0][1], busy[-1][2]
        if best is None or peak > best[0]:
            best = (peak, pid, start, end)
    if best is None:
        return ops, None
    _, leader, start, end = best
    def at(pid, t, first):
        pts = [(ts, s[pid]) for ts, s in samples if pid in s]
        cand = [x for x in pts if (x[0] >= t if first else x[0] <= t)]
        return (cand[0] if first else cand[-1]) if cand else None
    res = {}
    for pid in pids:
        a, b = at(pid, start, True), at(pid, end, False)
        if not a or not b or b[0] <= a[0]:
            continue
        dt = b[0] - a[0]
        res[pid] = ((b[1][0] - a[1][0]) / dt, (b[1][1] - a[1][1]) / dt, b[1][2])
    return ops, (leader, res)

if __name__ == '__main__':
    exe, mode = sys.argv[1], sys.argv[2]
    out, samples = run(exe, mode, sys.argv[3:])
    ops, r = analyse(out, samples)
    line = [l for l in out.splitlines() if 'ops/s' in l]
    print(f'== {os.path.basename(exe)} {mode}: {line[-1].strip() if line else out[-300:]}')
    if r:
        leader, res = r
        tot_cpu = sum(v[0] for v in res.values())
        lc, lcs, lth = res.get(leader, (0, 0, 0))
        print(f'   ops/s {ops:.0f}  leader cpu {lc:.2f} s/s = {1000*lc/ops:.3f} s/1k ops, '
              f'ctxsw {lcs/ops:.1f}/op, threads {lth}; all servers {1000*tot_cpu/ops:.3f} cpu-s/1k ops')
