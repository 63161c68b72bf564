//! What a disk keeps through a power cut, as a model the mount serves: every file and directory
//! has a *volatile* state (what programs see now) and a *durable* one (what survives a cut).
//!
//! The rules are strict POSIX, the ones an application may rely on and nothing more:
//! - `fsync`/`fdatasync` of a file makes its content and size durable, not its name;
//! - `fsync` of a directory makes its entries durable (creates, unlinks, renames in or out of
//!   it), not the content of the files they name;
//! - a rename is durable once both directories are synced;
//! - a cut puts every volatile state back to its durable one and forgets the files that no
//!   durable entry reaches.
//!
//! So a program that fsyncs a new file but not its directory loses the file, and one that
//! renames a temporary file over another without syncing the directory may find the old one: a
//! cut after each kind of sync is in the tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub type Ino = u64;

/// The root directory.
pub const ROOT: Ino = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument")]
    Invalid,
}

impl FsError {
    /// The errno FUSE answers with.
    pub fn errno(self) -> i32 {
        match self {
            FsError::NotFound => 2,
            FsError::Exists => 17,
            FsError::NotDir => 20,
            FsError::IsDir => 21,
            FsError::NotEmpty => 39,
            FsError::Invalid => 22,
        }
    }
}

pub type Result<T> = std::result::Result<T, FsError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// Granularity of the dirty-range tracking: an fsync copies only the pages written since the
/// last one, so that syncing a growing database stays cheap.
const PAGE: usize = 4096;

/// A file's two contents and the pages where they may differ.
#[derive(Debug, Clone, Default)]
struct FileData {
    now: Vec<u8>,
    durable: Vec<u8>,
    dirty: BTreeSet<usize>,
}

impl FileData {
    fn touch(&mut self, start: usize, end: usize) {
        if end > start {
            self.dirty.extend(start / PAGE..=(end - 1) / PAGE);
        }
    }

    fn write(&mut self, start: usize, bytes: &[u8]) -> Result<()> {
        let end = start.checked_add(bytes.len()).ok_or(FsError::Invalid)?;
        if self.now.len() < end {
            let old = self.now.len();
            self.now.resize(end, 0);
            self.touch(old, end);
        }
        self.now[start..end].copy_from_slice(bytes);
        self.touch(start, end);
        Ok(())
    }

    fn truncate(&mut self, size: usize) {
        let old = self.now.len();
        self.now.resize(size, 0);
        self.touch(old.min(size), old.max(size));
    }

    fn sync(&mut self) {
        self.durable.resize(self.now.len(), 0);
        for page in std::mem::take(&mut self.dirty) {
            let start = page * PAGE;
            let end = (start + PAGE).min(self.now.len());
            if start < end {
                self.durable[start..end].copy_from_slice(&self.now[start..end]);
            }
        }
    }

    fn revert(&mut self) {
        self.now.clone_from(&self.durable);
        self.dirty.clear();
    }
}

#[derive(Debug, Clone)]
enum Body {
    File(FileData),
    Dir {
        now: BTreeMap<String, Ino>,
        durable: BTreeMap<String, Ino>,
    },
}

#[derive(Debug, Clone)]
struct Node {
    body: Body,
    /// Permission bits (the mode's low 12 bits), kept as set: a cut does not change them.
    perm: u32,
    /// Open handles: an unlinked file stays readable through them.
    open: u32,
}

/// Attributes the mount reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u32,
}

/// The filesystem's two states.
#[derive(Debug, Clone)]
pub struct Fs {
    nodes: HashMap<Ino, Node>,
    next: Ino,
    /// Power cuts so far.
    pub cuts: u64,
    /// A disk that acknowledges `fsync` without making anything durable (a volatile write cache
    /// that lies): only [`Fs::sync_all`] does. For the checkers' self-test, which must then see
    /// acknowledged writes lost.
    pub lying: bool,
    /// Metadata as a journaling filesystem keeps it (ext4 `data=ordered`, XFS): an `fsync` of
    /// a file commits the journal, so every create, rename and unlink made so far is durable
    /// with it, without a directory fsync. Off: strict POSIX, where only a directory's fsync
    /// makes its entries durable. Programs written for ext4 (InnoDB) need it on.
    pub journaled: bool,
}

impl Default for Fs {
    fn default() -> Fs {
        Fs::new()
    }
}

impl Fs {
    /// An empty filesystem whose root directory is durable.
    pub fn new() -> Fs {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                body: Body::Dir {
                    now: BTreeMap::new(),
                    durable: BTreeMap::new(),
                },
                perm: 0o755,
                open: 0,
            },
        );
        Fs {
            nodes,
            next: ROOT + 1,
            cuts: 0,
            lying: false,
            journaled: false,
        }
    }

    fn node(&self, ino: Ino) -> Result<&Node> {
        self.nodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn entries(&self, dir: Ino) -> Result<&BTreeMap<String, Ino>> {
        match &self.node(dir)?.body {
            Body::Dir { now, .. } => Ok(now),
            Body::File(_) => Err(FsError::NotDir),
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> Result<&mut BTreeMap<String, Ino>> {
        match &mut self.node_mut(dir)?.body {
            Body::Dir { now, .. } => Ok(now),
            Body::File(_) => Err(FsError::NotDir),
        }
    }

    pub fn attr(&self, ino: Ino) -> Result<Attr> {
        let n = self.node(ino)?;
        Ok(match &n.body {
            Body::File(f) => Attr {
                ino,
                kind: Kind::File,
                size: f.now.len() as u64,
                perm: n.perm,
            },
            Body::Dir { .. } => Attr {
                ino,
                kind: Kind::Dir,
                size: 4096,
                perm: n.perm,
            },
        })
    }

    pub fn lookup(&self, parent: Ino, name: &str) -> Result<Ino> {
        self.entries(parent)?
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    /// The names in directory `dir`, now.
    pub fn list(&self, dir: Ino) -> Result<Vec<(String, Ino, Kind)>> {
        let mut out = Vec::new();
        for (name, &ino) in self.entries(dir)? {
            out.push((name.clone(), ino, self.attr(ino)?.kind));
        }
        Ok(out)
    }

    fn add(&mut self, parent: Ino, name: &str, body: Body, perm: u32) -> Result<Ino> {
        if name.is_empty() || name.contains('/') {
            return Err(FsError::Invalid);
        }
        if self.entries(parent)?.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                body,
                perm,
                open: 0,
            },
        );
        self.entries_mut(parent)?.insert(name.to_string(), ino);
        Ok(ino)
    }

    /// A new empty file; nothing of it is durable yet.
    pub fn create(&mut self, parent: Ino, name: &str, perm: u32) -> Result<Ino> {
        self.add(parent, name, Body::File(FileData::default()), perm)
    }

    pub fn mkdir(&mut self, parent: Ino, name: &str, perm: u32) -> Result<Ino> {
        self.add(
            parent,
            name,
            Body::Dir {
                now: BTreeMap::new(),
                durable: BTreeMap::new(),
            },
            perm,
        )
    }

    pub fn set_perm(&mut self, ino: Ino, perm: u32) -> Result<()> {
        self.node_mut(ino)?.perm = perm & 0o7777;
        Ok(())
    }

    pub fn unlink(&mut self, parent: Ino, name: &str) -> Result<()> {
        let ino = self.lookup(parent, name)?;
        if self.attr(ino)?.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        self.entries_mut(parent)?.remove(name);
        self.collect();
        Ok(())
    }

    pub fn rmdir(&mut self, parent: Ino, name: &str) -> Result<()> {
        let ino = self.lookup(parent, name)?;
        if !self.entries(ino)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.entries_mut(parent)?.remove(name);
        self.collect();
        Ok(())
    }

    /// Moves `name` of `parent` to `to_name` of `to_parent`, replacing a file there.
    pub fn rename(&mut self, parent: Ino, name: &str, to_parent: Ino, to_name: &str) -> Result<()> {
        let ino = self.lookup(parent, name)?;
        if to_name.is_empty() || to_name.contains('/') {
            return Err(FsError::Invalid);
        }
        self.entries(to_parent)?;
        if let Ok(old) = self.lookup(to_parent, to_name) {
            if old == ino {
                return Ok(());
            }
            match (self.attr(ino)?.kind, self.attr(old)?.kind) {
                (Kind::File, Kind::Dir) => return Err(FsError::IsDir),
                (Kind::Dir, Kind::File) => return Err(FsError::NotDir),
                (Kind::Dir, Kind::Dir) if !self.entries(old)?.is_empty() => {
                    return Err(FsError::NotEmpty)
                }
                _ => {}
            }
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(to_parent)?
            .insert(to_name.to_string(), ino);
        self.collect();
        Ok(())
    }

    fn data(&self, ino: Ino) -> Result<&Vec<u8>> {
        match &self.node(ino)?.body {
            Body::File(f) => Ok(&f.now),
            Body::Dir { .. } => Err(FsError::IsDir),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut FileData> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir { .. } => Err(FsError::IsDir),
        }
    }

    pub fn read(&self, ino: Ino, offset: u64, len: usize) -> Result<Vec<u8>> {
        let data = self.data(ino)?;
        let start = usize::try_from(offset).map_err(|_| FsError::Invalid)?;
        if start >= data.len() {
            return Ok(Vec::new());
        }
        let end = start.saturating_add(len).min(data.len());
        Ok(data[start..end].to_vec())
    }

    pub fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8]) -> Result<usize> {
        let start = usize::try_from(offset).map_err(|_| FsError::Invalid)?;
        self.file_mut(ino)?.write(start, bytes)?;
        Ok(bytes.len())
    }

    pub fn truncate(&mut self, ino: Ino, size: u64) -> Result<()> {
        let size = usize::try_from(size).map_err(|_| FsError::Invalid)?;
        self.file_mut(ino)?.truncate(size);
        Ok(())
    }

    /// `fsync`/`fdatasync`: a file's content and size, or a directory's entries, become
    /// durable.
    pub fn fsync(&mut self, ino: Ino) -> Result<()> {
        if self.lying {
            self.node(ino)?;
            return Ok(());
        }
        if self.journaled {
            let dirs: Vec<Ino> = self
                .nodes
                .iter()
                .filter(|(_, n)| matches!(n.body, Body::Dir { .. }))
                .map(|(i, _)| *i)
                .collect();
            for dir in dirs {
                self.make_durable(dir)?;
            }
        }
        self.make_durable(ino)
    }

    fn make_durable(&mut self, ino: Ino) -> Result<()> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => f.sync(),
            Body::Dir { now, durable } => durable.clone_from(now),
        }
        Ok(())
    }

    /// `syncfs`/`sync`: everything becomes durable.
    pub fn sync_all(&mut self) {
        let inos: Vec<Ino> = self.nodes.keys().copied().collect();
        for ino in inos {
            let _ = self.make_durable(ino);
        }
    }

    pub fn open(&mut self, ino: Ino) -> Result<()> {
        self.node_mut(ino)?.open += 1;
        Ok(())
    }

    pub fn release(&mut self, ino: Ino) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.open = n.open.saturating_sub(1);
        }
        self.collect();
    }

    /// The power cut: every volatile state becomes its durable one; what no durable entry
    /// reaches is gone. Open handles die with the processes that held them.
    pub fn cut(&mut self) {
        for n in self.nodes.values_mut() {
            n.open = 0;
            match &mut n.body {
                Body::File(f) => f.revert(),
                Body::Dir { now, durable } => now.clone_from(durable),
            }
        }
        self.cuts += 1;
        self.collect();
    }

    /// Drops the nodes that no entry reaches, volatile or durable, and no handle holds.
    fn collect(&mut self) {
        let mut reached = std::collections::HashSet::new();
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if !reached.insert(ino) {
                continue;
            }
            if let Some(Node {
                body: Body::Dir { now, durable },
                ..
            }) = self.nodes.get(&ino)
            {
                todo.extend(now.values().chain(durable.values()).copied());
            }
        }
        self.nodes
            .retain(|ino, n| reached.contains(ino) || n.open > 0);
    }

    /// Files and directories held now (tests check that forgotten ones are freed).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests;
