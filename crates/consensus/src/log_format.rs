//! The versioned format of what Raft stores and replicates: log entries (`logdb.payload`), the
//! batch inside a normal entry (also on the wire, inside AppendEntries), and the state
//! machine's meta (`raft_sm_meta`, which every snapshot carries).
//!
//! Format 1 is written by hand: every record starts with its format number, every variant
//! with a tag byte fixed below, fields in the order this file writes them. Nothing depends on
//! the order in which Rust declares an enum's variants or a struct's fields, so sqlstore or
//! openraft may reorder theirs freely. Integers are LEB128 varints (zigzag for signed), so an
//! entry is about as compact as bincode's and takes one pass to write. A change to what is
//! written is a new format number (ARCHITECTURE.md, "Log format and upgrades").
//!
//! Format 0 is the bincode of the types as they were before (read only, `log_format::v0`).
//!
//! Format 2 writes exactly what format 1 writes; its number says that the statements inside
//! may use the state schema of format 2 (`user_login_tokens`, the cluster relations and
//! templates), which a format 1 server lacks:
//! applied there, they would fail where they succeed on the others. A server therefore reads
//! formats 1 and 2 with the same code, and peers of formats 1 and 2 refuse each other
//! (ARCHITECTURE.md, "Log format and upgrades": a release that adds to the schema is a new
//! format).

mod codec;
#[cfg(test)]
mod props;
mod v0;

use std::collections::{BTreeMap, BTreeSet};

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StoredMembership};
use sqlstore::{SqlStmt, SqlTxn, SqlValue};

use crate::error::Error;
use crate::types::{Batch, ServerNode, TypeConfig};
use codec::{Reader, Writer};

/// The format this server writes, and the newest it reads. It reads every older one from its
/// own files (log, snapshot, state database): today formats 0 and 1.
pub const FORMAT: u64 = 2;

/// Entry kinds.
const ENTRY_BLANK: u8 = 1;
const ENTRY_NORMAL: u8 = 2;
const ENTRY_MEMBERSHIP: u8 = 3;

/// `SqlValue` kinds.
const VALUE_NULL: u8 = 0;
const VALUE_INT: u8 = 1;
const VALUE_TEXT: u8 = 2;
const VALUE_BLOB: u8 = 3;
const VALUE_REAL: u8 = 4;

/// `SqlStmt` flag bits; a bit not listed here is refused, not ignored.
const STMT_MUST_MATCH: u8 = 1;

/// An `Option` is a presence byte.
const ABSENT: u8 = 0;
const PRESENT: u8 = 1;

/// Why bytes are not a record of the format they claim.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("ends early (byte {at})")]
    Truncated { at: usize },
    #[error("bytes after the end of the record (byte {at})")]
    Trailing { at: usize },
    #[error("integer too large (byte {at})")]
    VarintOverflow { at: usize },
    #[error("text is not UTF-8 (byte {at})")]
    Utf8 { at: usize },
    #[error("unknown {what} tag {tag} (byte {at})")]
    Tag {
        what: &'static str,
        tag: u8,
        at: usize,
    },
    #[error("starts with format {found}, but was stored as format {expected}")]
    Format { found: u64, expected: u64 },
    #[error("format 0: {0}")]
    Legacy(#[from] bincode::Error),
}

fn decode_err(what: &'static str) -> impl FnOnce(DecodeError) -> Error {
    move |source| Error::Decode { what, source }
}

/// A format 1 or 2 record's body (the two are written alike), after checking the format it
/// starts with against `format` (the one it was stored as).
fn body<'a>(what: &'static str, format: u64, raw: &'a [u8]) -> Result<Reader<'a>, Error> {
    if format > FORMAT {
        return Err(Error::NewerFormat {
            what,
            found: format,
            known: FORMAT,
        });
    }
    let mut r = Reader::new(raw);
    let found = r.varint().map_err(decode_err(what))?;
    if found != format {
        return Err(decode_err(what)(DecodeError::Format {
            found,
            expected: format,
        }));
    }
    Ok(r)
}

fn write_log_id(w: &mut Writer, l: &LogId<u64>) {
    w.varint(l.leader_id.term);
    w.varint(l.leader_id.node_id);
    w.varint(l.index);
}

fn read_log_id(r: &mut Reader<'_>) -> Result<LogId<u64>, DecodeError> {
    let term = r.varint()?;
    let node = r.varint()?;
    let index = r.varint()?;
    Ok(LogId::new(CommittedLeaderId::new(term, node), index))
}

fn write_opt_log_id(w: &mut Writer, l: &Option<LogId<u64>>) {
    match l {
        None => w.u8(ABSENT),
        Some(l) => {
            w.u8(PRESENT);
            write_log_id(w, l);
        }
    }
}

fn read_opt_log_id(r: &mut Reader<'_>) -> Result<Option<LogId<u64>>, DecodeError> {
    let at = r.at();
    match r.u8()? {
        ABSENT => Ok(None),
        PRESENT => read_log_id(r).map(Some),
        tag => Err(DecodeError::Tag {
            what: "option",
            tag,
            at,
        }),
    }
}

fn write_value(w: &mut Writer, v: &SqlValue) {
    match v {
        SqlValue::Null => w.u8(VALUE_NULL),
        SqlValue::Int(i) => {
            w.u8(VALUE_INT);
            w.i64(*i);
        }
        SqlValue::Text(t) => {
            w.u8(VALUE_TEXT);
            w.str(t);
        }
        SqlValue::Blob(b) => {
            w.u8(VALUE_BLOB);
            w.bytes(b);
        }
        SqlValue::Real(f) => {
            w.u8(VALUE_REAL);
            w.f64(*f);
        }
    }
}

fn read_value(r: &mut Reader<'_>) -> Result<SqlValue, DecodeError> {
    let at = r.at();
    Ok(match r.u8()? {
        VALUE_NULL => SqlValue::Null,
        VALUE_INT => SqlValue::Int(r.i64()?),
        VALUE_TEXT => SqlValue::Text(r.string()?),
        VALUE_BLOB => SqlValue::Blob(r.bytes()?.to_vec()),
        VALUE_REAL => SqlValue::Real(r.f64()?),
        tag => {
            return Err(DecodeError::Tag {
                what: "value",
                tag,
                at,
            })
        }
    })
}

fn write_batch(w: &mut Writer, b: &Batch) {
    w.count(b.txns.len());
    for t in b.txns.iter() {
        w.count(t.stmts.len());
        for s in &t.stmts {
            w.str(&s.sql);
            w.u8(if s.must_match { STMT_MUST_MATCH } else { 0 });
            w.count(s.params.len());
            for p in &s.params {
                write_value(w, p);
            }
        }
    }
}

fn read_batch(r: &mut Reader<'_>) -> Result<Batch, DecodeError> {
    let n = r.count()?;
    let mut txns = Vec::with_capacity(n);
    for _ in 0..n {
        let n = r.count()?;
        let mut stmts = Vec::with_capacity(n);
        for _ in 0..n {
            let sql = r.string()?;
            let at = r.at();
            let flags = r.u8()?;
            if flags & !STMT_MUST_MATCH != 0 {
                return Err(DecodeError::Tag {
                    what: "statement flags",
                    tag: flags,
                    at,
                });
            }
            let n = r.count()?;
            let mut params = Vec::with_capacity(n);
            for _ in 0..n {
                params.push(read_value(r)?);
            }
            stmts.push(SqlStmt {
                sql,
                params,
                must_match: flags & STMT_MUST_MATCH != 0,
            });
        }
        txns.push(SqlTxn { stmts });
    }
    Ok(Batch::new(txns))
}

fn write_membership(w: &mut Writer, m: &Membership<u64, ServerNode>) {
    let configs = m.get_joint_config();
    w.count(configs.len());
    for c in configs {
        w.count(c.len());
        for id in c {
            w.varint(*id);
        }
    }
    let nodes: Vec<(&u64, &ServerNode)> = m.nodes().collect();
    w.count(nodes.len());
    for (id, n) in nodes {
        w.varint(*id);
        w.str(&n.name);
        w.str(&n.rpc);
    }
}

fn read_membership(r: &mut Reader<'_>) -> Result<Membership<u64, ServerNode>, DecodeError> {
    let n = r.count()?;
    let mut configs = Vec::with_capacity(n);
    for _ in 0..n {
        let mut ids = BTreeSet::new();
        for _ in 0..r.count()? {
            ids.insert(r.varint()?);
        }
        configs.push(ids);
    }
    let mut nodes = BTreeMap::new();
    for _ in 0..r.count()? {
        let id = r.varint()?;
        let name = r.string()?;
        let rpc = r.string()?;
        nodes.insert(id, ServerNode { name, rpc });
    }
    Ok(Membership::new(configs, nodes))
}

/// A log entry as `logdb.payload` stores it, in [`FORMAT`].
pub fn encode_entry(e: &Entry<TypeConfig>) -> Vec<u8> {
    let hint = match &e.payload {
        EntryPayload::Normal(b) => b.txns.iter().map(SqlTxn::approx_bytes).sum(),
        _ => 0,
    };
    let mut w = Writer::with_capacity(32 + hint);
    w.varint(FORMAT);
    write_log_id(&mut w, &e.log_id);
    match &e.payload {
        EntryPayload::Blank => w.u8(ENTRY_BLANK),
        EntryPayload::Normal(b) => {
            w.u8(ENTRY_NORMAL);
            write_batch(&mut w, b);
        }
        EntryPayload::Membership(m) => {
            w.u8(ENTRY_MEMBERSHIP);
            write_membership(&mut w, m);
        }
    }
    w.0
}

/// A `logdb.payload` stored as `format` (its row's `format` column).
pub fn decode_entry(format: u64, raw: &[u8]) -> Result<Entry<TypeConfig>, Error> {
    const WHAT: &str = "log entry";
    if format == 0 {
        return v0::entry(raw).map_err(decode_err(WHAT));
    }
    let mut r = body(WHAT, format, raw)?;
    let entry = (|| {
        let log_id = read_log_id(&mut r)?;
        let at = r.at();
        let payload = match r.u8()? {
            ENTRY_BLANK => EntryPayload::Blank,
            ENTRY_NORMAL => EntryPayload::Normal(read_batch(&mut r)?),
            ENTRY_MEMBERSHIP => EntryPayload::Membership(read_membership(&mut r)?),
            tag => {
                return Err(DecodeError::Tag {
                    what: "entry",
                    tag,
                    at,
                })
            }
        };
        Ok(Entry { log_id, payload })
    })()
    .map_err(decode_err(WHAT))?;
    r.finish().map_err(decode_err(WHAT))?;
    Ok(entry)
}

/// A batch on its own, as AppendEntries carries it: [`FORMAT`], then the batch.
pub fn encode_batch(b: &Batch) -> Vec<u8> {
    let hint: usize = b.txns.iter().map(SqlTxn::approx_bytes).sum();
    let mut w = Writer::with_capacity(8 + hint);
    w.varint(FORMAT);
    write_batch(&mut w, b);
    w.0
}

/// A batch from a peer. Peers of a zone speak one format (the call's name carries it), so
/// only [`FORMAT`] is accepted here.
pub fn decode_batch(raw: &[u8]) -> Result<Batch, DecodeError> {
    let mut r = Reader::new(raw);
    let found = r.varint()?;
    if found != FORMAT {
        return Err(DecodeError::Format {
            found,
            expected: FORMAT,
        });
    }
    let b = read_batch(&mut r)?;
    r.finish()?;
    Ok(b)
}

/// `raft_sm_meta.last_applied` in [`FORMAT`].
pub fn encode_applied(l: &Option<LogId<u64>>) -> Vec<u8> {
    let mut w = Writer::with_capacity(32);
    w.varint(FORMAT);
    write_opt_log_id(&mut w, l);
    w.0
}

pub fn decode_applied(format: u64, raw: &[u8]) -> Result<Option<LogId<u64>>, Error> {
    const WHAT: &str = "last_applied";
    if format == 0 {
        return v0::applied(raw).map_err(decode_err(WHAT));
    }
    let mut r = body(WHAT, format, raw)?;
    let l = read_opt_log_id(&mut r).map_err(decode_err(WHAT))?;
    r.finish().map_err(decode_err(WHAT))?;
    Ok(l)
}

/// `raft_sm_meta.membership` in [`FORMAT`].
pub fn encode_membership(m: &StoredMembership<u64, ServerNode>) -> Vec<u8> {
    let mut w = Writer::with_capacity(256);
    w.varint(FORMAT);
    write_opt_log_id(&mut w, m.log_id());
    write_membership(&mut w, m.membership());
    w.0
}

pub fn decode_membership(
    format: u64,
    raw: &[u8],
) -> Result<StoredMembership<u64, ServerNode>, Error> {
    const WHAT: &str = "membership";
    if format == 0 {
        return v0::membership(raw).map_err(decode_err(WHAT));
    }
    let mut r = body(WHAT, format, raw)?;
    let m = (|| {
        let log_id = read_opt_log_id(&mut r)?;
        Ok(StoredMembership::new(log_id, read_membership(&mut r)?))
    })()
    .map_err(decode_err(WHAT))?;
    r.finish().map_err(decode_err(WHAT))?;
    Ok(m)
}
