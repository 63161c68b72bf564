//! What one server's apply costs per allocation, on a SQLite state database on disk:
//! `cargo bench -p sqlstore --bench apply`.
//!
//! Each round applies 32-transaction entries of `one.template.allocate`'s two statements (the
//! insert that takes the next oid, and the counter) in one database transaction per entry, as
//! `consensus`' applier does, two ways: through `apply_batch_or_abandon` (what every server
//! runs), and the same statements as written (`RETURNING` included), to show what the apply's
//! own handling saves. The ways alternate, so a noisy machine slows both alike. Numbers are
//! CPU-bound microseconds per transaction; the commit is not synced (`synchronous = OFF`), as
//! the apply's commit is not on the write's durable path.
//!
//! Then `one.vm.allocate`'s transaction alone, in entries of 1 and of 8 transactions (what a
//! zone's leader proposes at 1 and at 32 writes in flight), so the cost of `vm_pool`'s indexes
//! shows: a new VM's row enters three of them (`open::VM_INDEXES`).

use std::time::Instant;

use sqlstore::objects::{next_oid, template, vm};
use sqlstore::{Conn, Location, SqlTxn};

const ENTRY: usize = 32;
const ENTRIES: usize = 300;

fn allocation(i: usize, body: &str) -> SqlTxn {
    SqlTxn {
        stmts: vec![
            template::insert(
                &format!("t-{i}"),
                0,
                0,
                0o600,
                1_764_800_000,
                body.to_string(),
            ),
            next_oid("template_pool"),
        ],
    }
}

fn vm_allocation(i: usize) -> SqlTxn {
    SqlTxn {
        stmts: vec![
            vm::insert(vm::NewVm {
                name: format!("v-{i}"),
                prefix: "one".to_string(),
                uid: 0,
                gid: 0,
                perms: 0o600,
                state: 1,
                prev_state: 1,
                stime: 1_764_800_000,
                cpu: 1.0,
                memory: 64,
                template: "<TEMPLATE><AUTOMATIC_REQUIREMENTS><![CDATA[!(PUBLIC_CLOUD = YES)]]>\
                           </AUTOMATIC_REQUIREMENTS><CPU><![CDATA[1]]></CPU><MEMORY><![CDATA[64]]>\
                           </MEMORY><VMID><![CDATA[0]]></VMID></TEMPLATE>"
                    .to_string(),
                user_template: String::new(),
                disk_size: 0.0,
            }),
            next_oid("vm_pool"),
        ],
    }
}

/// Microseconds per `one.vm.allocate` transaction, applied in entries of `per`.
fn vm_round(c: &mut Conn, first: usize, per: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let entries = 2400 / per;
    let txns: Vec<Vec<SqlTxn>> = (0..entries)
        .map(|e| {
            (0..per)
                .map(|t| vm_allocation(first + e * per + t))
                .collect()
        })
        .collect();
    let started = Instant::now();
    for entry in &txns {
        let tx = c.transaction()?;
        if sqlstore::apply_batch_or_abandon(&tx, entry, false)?.is_none() {
            return Err("an allocation failed".into());
        }
        tx.commit()?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / (entries * per) as f64)
}

fn as_written(tx: &Conn, txns: &[SqlTxn]) -> Result<(), Box<dyn std::error::Error>> {
    for txn in txns {
        for stmt in &txn.stmts {
            tx.prepare_cached(&stmt.sql)?.run(stmt.params.as_slice())?;
        }
    }
    Ok(())
}

fn round(
    c: &mut Conn,
    first: usize,
    body: &str,
    written: bool,
) -> Result<f64, Box<dyn std::error::Error>> {
    let entries: Vec<Vec<SqlTxn>> = (0..ENTRIES)
        .map(|e| {
            (0..ENTRY)
                .map(|t| allocation(first + e * ENTRY + t, body))
                .collect()
        })
        .collect();
    let started = Instant::now();
    for txns in &entries {
        let tx = c.transaction()?;
        if written {
            as_written(&tx, txns)?;
        } else {
            let done = sqlstore::apply_batch_or_abandon(&tx, txns, false)?;
            if done.is_none() {
                return Err("an allocation failed".into());
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / (ENTRIES * ENTRY) as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut c = sqlstore::open_state(&Location::Sqlite(dir.path().join("one.db")))?;
    c.execute_batch("PRAGMA synchronous = OFF")?;
    c.execute(
        "INSERT INTO pool_control (tablename, last_oid) SELECT 'template_pool', -1 \
         WHERE NOT EXISTS (SELECT 1 FROM pool_control WHERE tablename = 'template_pool')",
        (),
    )?;
    c.execute(
        "INSERT INTO pool_control (tablename, last_oid) SELECT 'vm_pool', -1 \
         WHERE NOT EXISTS (SELECT 1 FROM pool_control WHERE tablename = 'vm_pool')",
        (),
    )?;
    let body = format!(
        "<VMTEMPLATE><TEMPLATE><CPU><![CDATA[0.1]]></CPU>{}</TEMPLATE></VMTEMPLATE>",
        "<MEMORY><![CDATA[32]]></MEMORY>".repeat(24)
    );
    let mut next = 0;
    let (mut applied, mut written) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        for way in [false, true] {
            let us = round(&mut c, next, &body, way)?;
            next += ENTRIES * ENTRY;
            if way { &mut written } else { &mut applied }.push(us);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "one.template.allocate's transaction, {ENTRY} per entry, {} bytes of body:",
        body.len()
    );
    println!(
        "  as the apply runs it: {:.2} us (median of 5 rounds of {} transactions)",
        median(&mut applied),
        ENTRIES * ENTRY
    );
    println!("  as written:           {:.2} us", median(&mut written));
    let (mut one, mut eight) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        one.push(vm_round(&mut c, next, 1)?);
        next += 2400;
        eight.push(vm_round(&mut c, next, 8)?);
        next += 2400;
    }
    println!("one.vm.allocate's transaction (median of 5 rounds of 2400 transactions):");
    println!("  1 per entry: {:.2} us", median(&mut one));
    println!("  8 per entry: {:.2} us", median(&mut eight));
    Ok(())
}
