//! Text backups with their digests on the last line (`onedb backup` of MySQL, and
//! `--federated`): written to a temporary file, synced and renamed into place; read back only
//! if every byte before that line still has the digest it was written with.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::open::DbError;

/// Starts the digest line, the file's last.
const TRAILER: &str = "-- oneha-backup ";

fn corrupt(path: &Path, what: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(format!("{}: {what}", path.display()))
}

/// A text backup being written, one line at a time, with the digest of what it holds.
pub(crate) struct Writer<'p> {
    dest: &'p Path,
    file: BufWriter<NamedTempFile>,
    hash: Sha256,
}

impl<'p> Writer<'p> {
    /// A new file that will replace `dest`; `prefix` names its temporary file.
    pub(crate) fn create(dest: &'p Path, prefix: &str) -> Result<Writer<'p>, DbError> {
        let dir = dest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = crate::files::temp_file_in(dir, prefix, ".part").map_err(DbError::io(dest))?;
        Ok(Writer {
            dest,
            file: BufWriter::new(tmp),
            hash: Sha256::new(),
        })
    }

    pub(crate) fn line(&mut self, text: &str) -> Result<(), DbError> {
        self.hash.update(text.as_bytes());
        self.hash.update(b"\n");
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.write_all(b"\n"))
            .map_err(DbError::io(self.dest))
    }

    /// Ends the file with its digest line (`format`, the digest of the `state` it holds, and
    /// that of its bytes), syncs it and renames it over `dest`.
    pub(crate) fn finish(self, format: &str, state: &str) -> Result<(), DbError> {
        let dest = self.dest;
        let digest = hex::encode(self.hash.finalize());
        let tmp = self
            .file
            .into_inner()
            .map_err(|e| DbError::io(dest)(e.into_error()))?;
        let mut f = tmp.as_file();
        writeln!(
            f,
            "{TRAILER}format={format} state-sha256={state} file-sha256={digest}"
        )
        .and_then(|()| f.sync_all())
        .map_err(DbError::io(dest))?;
        tmp.persist(dest).map_err(|e| DbError::io(dest)(e.error))?;
        // The rename is durable only with its directory (found by the power-cut campaign: a
        // dump reported written was gone after a cut).
        crate::backup::sync_dir(dest);
        Ok(())
    }
}

/// The lines of the text backup `path` before its digest line, and the digest of the state it
/// holds, once its format is `format` and its bytes match their digest. `wrong_format` says
/// what a file of another format is.
pub(crate) fn read(
    path: &Path,
    format: &str,
    wrong_format: impl FnOnce(&str) -> String,
) -> Result<(String, String), DbError> {
    let bytes = fs::read(path).map_err(|e| corrupt(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| corrupt(path, "not a OneHA text backup (not UTF-8)"))?;
    let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let (body, last) = text.split_at(body_end);
    let fields = last.trim_end().strip_prefix(TRAILER).ok_or_else(|| {
        corrupt(
            path,
            "no OneHA digest line at the end (truncated, or not a OneHA backup)",
        )
    })?;
    let field = |name: &str| {
        fields
            .split(' ')
            .find_map(|f| f.strip_prefix(name))
            .map(str::to_string)
            .ok_or_else(|| corrupt(path, format!("digest line lacks {name}")))
    };
    let found = field("format=")?;
    if found != format {
        return Err(corrupt(path, wrong_format(&found)));
    }
    if hex::encode(Sha256::digest(body.as_bytes())) != field("file-sha256=")? {
        return Err(corrupt(
            path,
            "content does not match its digest (modified or damaged)",
        ));
    }
    Ok((body.to_string(), field("state-sha256=")?))
}
