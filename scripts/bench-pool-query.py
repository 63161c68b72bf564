#!/usr/bin/env python3
"""The SQL of a VM pool call alone, in two spellings (docs/benchmarks.md, issue 16, fifth round).

Builds a SQLite database with OneHA's vm_pool, history and vm_monitoring tables and 10k VMs
(2 placement and 3 monitoring records each), then times, best of 7, the pool query as
`POOL_ROWS` spells it (MAX() of the key, then a seek of that key) and with the row picked by
its rowid in the subquery. Python's sqlite3 builds a tuple per row: compare the two, not
either with oned's own figures.

    python3 scripts/bench-pool-query.py [--vms N]
"""

import argparse
import os
import sqlite3
import tempfile
import time

SCHEMA = """
CREATE TABLE vm_pool (oid INTEGER PRIMARY KEY, name TEXT NOT NULL, uid INTEGER NOT NULL,
  gid INTEGER NOT NULL, perms INTEGER NOT NULL, state INTEGER NOT NULL,
  lcm_state INTEGER NOT NULL, prev_state INTEGER NOT NULL, prev_lcm_state INTEGER NOT NULL,
  stime INTEGER NOT NULL, etime INTEGER NOT NULL DEFAULT 0, cpu REAL NOT NULL,
  memory INTEGER NOT NULL, hid INTEGER NOT NULL DEFAULT -1, template TEXT NOT NULL,
  user_template TEXT NOT NULL DEFAULT '', lock_level INTEGER NOT NULL DEFAULT 0,
  lock_owner INTEGER NOT NULL DEFAULT -1, lock_time INTEGER NOT NULL DEFAULT 0,
  lock_req INTEGER NOT NULL DEFAULT -1, disk_size REAL NOT NULL DEFAULT 0,
  resched INTEGER NOT NULL DEFAULT 0);
CREATE TABLE group_pool (oid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
  template TEXT NOT NULL DEFAULT '');
CREATE TABLE user_pool (oid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
  password TEXT NOT NULL);
CREATE TABLE history (vid INTEGER NOT NULL, seq INTEGER NOT NULL, hid INTEGER NOT NULL,
  hostname TEXT NOT NULL, vm_mad TEXT NOT NULL, stime INTEGER NOT NULL,
  etime INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (vid, seq));
CREATE TABLE vm_monitoring (vmid INTEGER NOT NULL, last_poll INTEGER NOT NULL,
  cpu INTEGER NOT NULL, memory INTEGER NOT NULL, netrx INTEGER NOT NULL,
  nettx INTEGER NOT NULL, diskrdbytes INTEGER NOT NULL, diskwrbytes INTEGER NOT NULL,
  diskrdiops INTEGER NOT NULL, diskwriops INTEGER NOT NULL, PRIMARY KEY (vmid, last_poll));
"""

SELECT = """SELECT v.oid, v.uid, v.gid, v.perms, v.name, COALESCE(u.name, ''),
  COALESCE(g.name, ''), v.lock_level, v.lock_owner, v.lock_time, v.lock_req, v.state,
  v.lcm_state, v.prev_state, v.prev_lcm_state, v.stime, v.etime, v.cpu, v.memory, v.template,
  v.user_template, v.resched, h.seq, h.hid, h.hostname, h.vm_mad, h.stime, h.etime, m.vmid,
  m.last_poll, m.cpu, m.memory, m.netrx, m.nettx, m.diskrdbytes, m.diskwrbytes, m.diskrdiops,
  m.diskwriops
FROM vm_pool v LEFT JOIN user_pool u ON u.oid = v.uid LEFT JOIN group_pool g ON g.oid = v.gid """

SPELLINGS = {
    "MAX() then the key (POOL_ROWS)": SELECT
    + """LEFT JOIN history h ON h.vid = v.oid
      AND h.seq = (SELECT MAX(hl.seq) FROM history hl WHERE hl.vid = v.oid)
    LEFT JOIN vm_monitoring m ON m.vmid = v.oid
      AND m.last_poll = (SELECT MAX(ml.last_poll) FROM vm_monitoring ml WHERE ml.vmid = v.oid)
    ORDER BY v.oid""",
    "the rowid": SELECT
    + """LEFT JOIN history h ON h.rowid =
      (SELECT hl.rowid FROM history hl WHERE hl.vid = v.oid ORDER BY hl.seq DESC LIMIT 1)
    LEFT JOIN vm_monitoring m ON m.rowid =
      (SELECT ml.rowid FROM vm_monitoring ml WHERE ml.vmid = v.oid
       ORDER BY ml.last_poll DESC LIMIT 1)
    ORDER BY v.oid""",
}


def fill(c, vms):
    c.executescript(SCHEMA)
    c.execute("INSERT INTO user_pool VALUES (0, 'oneadmin', 'x')")
    c.execute("INSERT INTO group_pool VALUES (0, 'oneadmin', '')")
    template = (
        'CPU="0.01"\nMEMORY="16"\n'
        'CONTEXT=[NETWORK="YES",SSH_PUBLIC_KEY="ssh-ed25519 AAAAxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]\n'
    ) * 2
    for i in range(vms):
        c.execute(
            "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state, "
            "prev_lcm_state, stime, cpu, memory, template, user_template) "
            "VALUES (?, ?, 0, 0, 384, 3, 3, 3, 3, 1, 0.01, 16, ?, 'LABELS=\"bench\"')",
            (i, f"vm-{i}", template),
        )
        for seq in range(2):
            c.execute("INSERT INTO history VALUES (?, ?, 1, 'host1', 'dummy', 1, 0)", (i, seq))
        for poll in range(3):
            c.execute(
                "INSERT INTO vm_monitoring VALUES (?, ?, 1, 2, 3, 4, 5, 6, 7, 8)", (i, 1000 + poll)
            )
    c.commit()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        c = sqlite3.connect(os.path.join(d, "pool.db"))
        fill(c, args.vms)
        answers = {}
        for _ in range(2):
            for name, sql in SPELLINGS.items():
                best = float("inf")
                for _ in range(7):
                    start = time.perf_counter()
                    rows = c.execute(sql).fetchall()
                    best = min(best, time.perf_counter() - start)
                answers[name] = rows
                print(f"{name}: {len(rows)} rows, best of 7 {best * 1000:.1f} ms")
        first, second = answers.values()
        print("same rows:", first == second)


if __name__ == "__main__":
    main()
