#!/usr/bin/env python3
"""Where a 1-in-flight write's time goes on the leader, from a `perf trace` of its syscalls.

Usage (docs/benchmarks.md, eleventh round):

    ONEHA_ONED=/tmp/oned-X target/release/oneha-bench compare --no-etcd --passes 1 --secs 12 \\
      --only writes-template --writes 1 &
    sleep 7; perf trace -T -e fsync,fdatasync,recvfrom,sendto,writev \\
      -p $(pgrep -f '^/tmp/oned-X' | sort -n | head -1) -o trace.txt -- sleep 2
    scripts/write-legs.py trace.txt

A write is the client's request read (the connection whose reads are the largest) up to its
answer written on the same connection. Inside it: the appends sent to the followers (writev of
the largest size seen on a peer connection), each follower's answer (the next read on that
connection), and the leader's log fsync (raft-log-writer). Writes with other than one fsync of
the log inside are left out. Tracing slows every syscall: compare legs between builds traced
the same way, not with untraced figures.
"""

import re
import statistics
import sys
from collections import Counter

LINE = re.compile(
    r"\s*([\d.]+) \(\s*([\d.]*)\s*(?:ms)?\): (\S+) +(\w+)\((?:fd: (\d+))?.*?\)\s*(?:= (-?\d+))?"
)


def events(path):
    out = []
    for line in open(path, encoding="utf-8", errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        t, d, thread, call, fd, ret = m.groups()
        if "[continued]" in line:
            for e in out:
                if e["call"] == call_of(line) and e["t"] == float(t) and e["d"] is None:
                    e["d"] = float(d)
            continue
        out.append(
            dict(
                t=float(t),
                d=float(d) if d else None,
                thread=thread,
                call=call,
                fd=fd,
                ret=int(ret) if ret else None,
            )
        )
    out.sort(key=lambda e: e["t"])
    return out


def call_of(line):
    m = re.search(r"\[continued\]: (\w+)\(", line)
    return m.group(1) if m else None


def legs(ev):
    # Per write the leader reads one request and about three peer answers, and writes two
    # appends and about two commit updates: of the two commonest sizes, the larger is the
    # request (reads) and the append (writes to peers).
    reads = Counter(e["ret"] for e in ev if e["call"] == "recvfrom" and e["ret"])
    request = max(size for size, _ in reads.most_common(2))
    client = Counter(
        e["fd"] for e in ev if e["call"] == "recvfrom" and e["ret"] == request
    ).most_common(1)[0][0]
    writes = Counter(
        e["ret"] for e in ev if e["call"] == "writev" and e["fd"] != client and e["ret"]
    )
    append = max(size for size, _ in writes.most_common(2))
    rows = []
    for i, e in enumerate(ev):
        if not (e["call"] == "recvfrom" and e["fd"] == client and e["ret"] == request):
            continue
        t0 = e["t"]
        answer = next(
            (x for x in ev[i + 1 :] if x["call"] == "writev" and x["fd"] == client), None
        )
        if not answer:
            continue
        inside = [x for x in ev[i + 1 :] if x["t"] <= answer["t"]]
        acks = []
        for s in (x for x in inside if x["call"] == "writev" and x["ret"] == append):
            a = next(
                (
                    x
                    for x in inside
                    if x["call"] == "recvfrom" and x["fd"] == s["fd"] and x["t"] > s["t"]
                ),
                None,
            )
            if a:
                acks.append(a["t"] + (a["d"] or 0))
        syncs = [
            x
            for x in inside
            if x["call"] in ("fsync", "fdatasync")
            and x["thread"].startswith("raft-log")
            and x["d"] is not None
        ]
        if not acks or len(syncs) != 1:
            continue
        synced = syncs[0]["t"] + syncs[0]["d"]
        first = min(acks)
        rows.append(
            {
                "request -> answer written": answer["t"] - t0,
                "request -> first follower answer read": first - t0,
                "request -> leader's fsync done": synced - t0,
                "leader's fsync done - first follower answer": synced - first,
                "later of the two -> answer written": answer["t"] - max(first, synced),
                "leader's fsync": syncs[0]["d"],
            }
        )
    return rows


def main():
    rows = legs(events(sys.argv[1] if len(sys.argv) > 1 else "trace.txt"))
    print(f"{len(rows)} writes with one fsync of the leader's log inside")
    if len(rows) < 4:
        return
    for name in rows[0]:
        v = [r[name] for r in rows]
        q = statistics.quantiles(v, n=4)
        print(f"{name}: median {statistics.median(v):.3f} ms (p25 {q[0]:.3f}, p75 {q[2]:.3f})")
    later = sum(1 for r in rows if r["leader's fsync done - first follower answer"] > 0)
    print(f"the leader's fsync ended after the first follower answer in {later} of {len(rows)}")


if __name__ == "__main__":
    main()
