//! The model served over a directory with FUSE (`/dev/fuse`, as root: the kernel mounts it
//! directly, no `fusermount`). Programs on the mount see an ordinary filesystem; the test that
//! holds the [`Mount`] cuts the power with [`Mount::cut`].
//!
//! The kernel is told to cache nothing it could show after a cut: entries and attributes
//! live 0 s, and a file's pages are dropped at every open (no `FOPEN_KEEP_CACHE`). Writes go
//! through to the model at each `write(2)` (FUSE's default, no writeback cache), `fsync` and
//! `fdatasync` arrive as FSYNC, a directory's as FSYNCDIR. `sync_file_range(2)` never reaches
//! a FUSE filesystem, so here it makes nothing durable: stricter than a disk, never looser.
//! Locks (`fcntl`, `flock`) are the kernel's own, as for any FUSE filesystem that does not
//! implement them.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::model::{Attr, Fs, FsError, Kind};

/// The kernel keeps nothing: after a cut, every name and size is asked again.
const TTL: Duration = Duration::ZERO;

/// The filesystem as FUSE serves it.
struct Served {
    fs: Arc<Mutex<Fs>>,
    uid: u32,
    gid: u32,
}

fn errno(e: FsError) -> Errno {
    Errno::from_i32(e.errno())
}

fn name_of(name: &OsStr) -> Result<&str, Errno> {
    name.to_str().ok_or(Errno::from_i32(22))
}

impl Served {
    fn fs(&self) -> MutexGuard<'_, Fs> {
        // A panic while the lock was held cannot leave the model half-changed in a way that
        // matters more than the panic itself: the test fails on it anyway.
        self.fs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file_attr(&self, a: Attr) -> FileAttr {
        let now = SystemTime::now();
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind: match a.kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            },
            perm: (a.perm & 0o7777) as u16,
            nlink: match a.kind {
                Kind::File => 1,
                Kind::Dir => 2,
            },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn entry(&self, reply: ReplyEntry, made: Result<u64, FsError>) {
        let attr = made.and_then(|ino| self.fs().attr(ino));
        match attr {
            Ok(a) => reply.entry(&TTL, &self.file_attr(a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// Makes `name` in `parent` with `make` and answers with its entry.
    fn make(
        &self,
        reply: ReplyEntry,
        name: &OsStr,
        make: impl FnOnce(&mut Fs, &str) -> Result<u64, FsError>,
    ) {
        match name_of(name) {
            Ok(n) => {
                let made = make(&mut self.fs(), n);
                self.entry(reply, made)
            }
            Err(e) => reply.error(e),
        }
    }

    fn done(reply: ReplyEmpty, r: Result<(), FsError>) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for Served {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match name_of(name) {
            Ok(n) => {
                let found = self.fs().lookup(parent.0, n);
                self.entry(reply, found)
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let attr = self.fs().attr(ino.0);
        match attr {
            Ok(a) => reply.attr(&TTL, &self.file_attr(a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let attr = {
            let mut fs = self.fs();
            (|| {
                if let Some(size) = size {
                    fs.truncate(ino.0, size)?;
                }
                if let Some(mode) = mode {
                    fs.set_perm(ino.0, mode)?;
                }
                fs.attr(ino.0)
            })()
        };
        match attr {
            Ok(a) => reply.attr(&TTL, &self.file_attr(a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.make(reply, name, |fs, n| {
            fs.mkdir(parent.0, n, mode & !umask & 0o7777)
        });
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Regular files only: `S_IFREG` or no type at all.
        if mode & 0o170000 != 0 && mode & 0o170000 != 0o100000 {
            return reply.error(Errno::from_i32(1));
        }
        self.make(reply, name, |fs, n| {
            fs.create(parent.0, n, mode & !umask & 0o7777)
        });
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let made = name_of(name).and_then(|n| {
            let mut fs = self.fs();
            let ino = fs
                .create(parent.0, n, mode & !umask & 0o7777)
                .map_err(errno)?;
            fs.open(ino).map_err(errno)?;
            fs.attr(ino).map_err(errno)
        });
        match made {
            Ok(a) => reply.created(
                &TTL,
                &self.file_attr(a),
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match name_of(name) {
            Ok(n) => Served::done(reply, self.fs().unlink(parent.0, n)),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match name_of(name) {
            Ok(n) => Served::done(reply, self.fs().rmdir(parent.0, n)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        // RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT are not served.
        if !flags.is_empty() {
            return reply.error(Errno::from_i32(22));
        }
        match (name_of(name), name_of(newname)) {
            (Ok(a), Ok(b)) => Served::done(reply, self.fs().rename(parent.0, a, newparent.0, b)),
            (Err(e), _) | (_, Err(e)) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs().open(ino.0) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let read = self.fs().read(ino.0, offset, size as usize);
        match read {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let written = self.fs().write(ino.0, offset, data);
        match written {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs().release(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Served::done(reply, self.fs().fsync(ino.0));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.fs().list(ino.0);
        let entries = match listed {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let dots = [
            (".".to_string(), ino.0, Kind::Dir),
            ("..".to_string(), ino.0, Kind::Dir),
        ];
        for (i, (name, child, kind)) in dots.into_iter().chain(entries).enumerate() {
            if (i as u64) < offset {
                continue;
            }
            let kind = match kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Served::done(reply, self.fs().fsync(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 20, 1 << 19, 1 << 19, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        let found = self.fs().attr(ino.0).map(|_| ());
        Served::done(reply, found);
    }
}

/// A lossy filesystem mounted over a directory; unmounted when dropped.
pub struct Mount {
    fs: Arc<Mutex<Fs>>,
    path: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl Mount {
    /// Mounts an empty lossy filesystem over `path` (an existing directory), owned by the
    /// directory's owner. Needs root and `/dev/fuse`.
    pub fn new(path: &Path) -> std::io::Result<Mount> {
        Mount::with(path, Fs::new())
    }

    /// A mount whose `fsync` lies ([`Fs::lying`]): for self-tests that must see data lost.
    pub fn lying(path: &Path) -> std::io::Result<Mount> {
        let mut fs = Fs::new();
        fs.lying = true;
        Mount::with(path, fs)
    }

    /// A mount with a journaling filesystem's metadata rules ([`Fs::journaled`]), for programs
    /// that rely on them (InnoDB).
    pub fn journaled(path: &Path) -> std::io::Result<Mount> {
        let mut fs = Fs::new();
        fs.journaled = true;
        Mount::with(path, fs)
    }

    fn with(path: &Path, fs: Fs) -> std::io::Result<Mount> {
        let meta = std::fs::metadata(path)?;
        let fs = Arc::new(Mutex::new(fs));
        let served = Served {
            fs: fs.clone(),
            uid: meta.uid(),
            gid: meta.gid(),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName("oneha-lossyfs".to_string()),
            MountOption::DefaultPermissions,
        ];
        config.acl = fuser::SessionACL::All;
        let session = fuser::spawn_mount(served, path, &config)?;
        Ok(Mount {
            fs,
            path: path.to_path_buf(),
            session: Some(session),
        })
    }

    /// For tests: a mount over `dir`, or `None` (said on stderr) where this machine cannot
    /// mount one. Panics instead when `ONEHA_REQUIRE_FUSE` says the machine must (CI as root),
    /// so that no power-cut test skips there unseen.
    pub fn for_test(dir: &Path) -> Option<Mount> {
        match Mount::new(dir) {
            Ok(m) => Some(m),
            Err(e) if std::env::var_os("ONEHA_REQUIRE_FUSE").is_none() => {
                eprintln!("no FUSE mount here ({e}): skipped");
                None
            }
            Err(e) => panic!("ONEHA_REQUIRE_FUSE is set but mounting failed: {e}"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fs(&self) -> MutexGuard<'_, Fs> {
        self.fs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts the power: everything not made durable is forgotten. Kill the programs that use
    /// the mount first, as a power cut would.
    pub fn cut(&self) {
        self.fs().cut();
    }

    /// Makes everything durable (`sync(2)` as a disk would do it).
    pub fn sync_all(&self) {
        self.fs().sync_all();
    }

    /// Power cuts so far.
    pub fn cuts(&self) -> u64 {
        self.fs().cuts
    }
}

/// How long dropping a mount waits for its FUSE session to end.
const UNMOUNT_WAIT: Duration = Duration::from_secs(10);

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            // The session ends only once every file on the mount is closed; a process of the
            // test that still holds one must not hang the test, so it is waited for a while
            // only (the unmount itself is lazy and done at once).
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(s.umount_and_join());
            });
            if rx.recv_timeout(UNMOUNT_WAIT).is_err() {
                eprintln!(
                    "lossyfs: {} still busy {UNMOUNT_WAIT:?} after its unmount",
                    self.path.display()
                );
            }
        }
    }
}
