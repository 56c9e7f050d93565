//! A pass-through FUSE filesystem whose `fsync` fails on demand: a real
//! kernel filesystem (served by a thread of the test process through
//! `/dev/fuse`) in front of a temporary folder, so that a daemon writing
//! there sees `fsync`/`fdatasync` return EIO exactly when the test says so,
//! as it would from a failing disk. Everything else is passed through.
//!
//! Root only (the mount syscall); elsewhere [`FaultFs::mount`] says why not
//! and the test skips. Unmounted when dropped.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// Attributes are not cached: sizes must be fresh after every write.
const TTL: Duration = Duration::ZERO;

/// Inode numbers of the paths seen so far (relative to the backing root).
#[derive(Default)]
struct Inodes {
    paths: HashMap<u64, PathBuf>,
    numbers: HashMap<PathBuf, u64>,
}

impl Inodes {
    fn number(&mut self, path: &Path) -> u64 {
        if let Some(n) = self.numbers.get(path) {
            return *n;
        }
        let n = self.paths.len() as u64 + 2; // 1 is the root's
        self.paths.insert(n, path.to_path_buf());
        self.numbers.insert(path.to_path_buf(), n);
        n
    }

    fn moved(&mut self, from: &Path, to: &Path) {
        let moved: Vec<(PathBuf, u64)> = self
            .numbers
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        for (p, n) in moved {
            self.numbers.remove(&p);
            let rest = p.strip_prefix(from).expect("filtered on it");
            // `join("")` would add a trailing slash: a file is not a folder.
            let new = match rest.as_os_str().is_empty() {
                true => to.to_path_buf(),
                false => to.join(rest),
            };
            self.paths.insert(n, new.clone());
            self.numbers.insert(new, n);
        }
    }
}

struct Passthrough {
    root: PathBuf,
    inodes: Mutex<Inodes>,
    files: Mutex<HashMap<u64, File>>,
    next_fh: AtomicU64,
    fail_fsync: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
}

fn kind(m: &Metadata) -> FileType {
    FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs.max(0) as u64, nsecs.clamp(0, 999_999_999) as u32)
}

fn attr(ino: u64, m: &Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: time(m.ctime(), m.ctime_nsec()),
        kind: kind(m),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        flags: 0,
    }
}

impl Passthrough {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        let inodes = self.inodes.lock().unwrap();
        match ino.0 {
            1 => Ok(PathBuf::new()),
            n => inodes.paths.get(&n).cloned().ok_or(Errno::ENOENT),
        }
    }

    fn real(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// The attributes of `rel`, numbering it if new.
    fn stat(&self, rel: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(self.real(rel))?;
        let ino = match rel.as_os_str().is_empty() {
            true => 1,
            false => self.inodes.lock().unwrap().number(rel),
        };
        Ok(attr(ino, &m))
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    fn keep(&self, f: File) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files.lock().unwrap().insert(fh, f);
        FileHandle(fh)
    }

    fn with_file<T>(
        &self,
        fh: FileHandle,
        f: impl FnOnce(&File) -> std::io::Result<T>,
    ) -> Result<T, Errno> {
        let files = self.files.lock().unwrap();
        let file = files.get(&fh.0).ok_or(Errno::EBADF)?;
        Ok(f(file)?)
    }
}

/// Replies `Ok` or the error.
macro_rules! reply {
    ($reply:expr, $res:expr, |$v:ident| $ok:expr) => {
        match $res {
            Ok($v) => $ok,
            Err(e) => $reply.error(e),
        }
    };
}

impl fuser::Filesystem for Passthrough {
    fn lookup(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let res = self.child(parent, name).and_then(|p| self.stat(&p));
        reply!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn getattr(&self, _: &Request, ino: INodeNo, _: Option<FileHandle>, reply: ReplyAttr) {
        let res = self.path(ino).and_then(|p| self.stat(&p));
        reply!(reply, res, |a| reply.attr(&TTL, &a));
    }

    fn setattr(
        &self,
        _: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = (|| {
            let rel = self.path(ino)?;
            if let Some(len) = size {
                match fh {
                    Some(fh) => self.with_file(fh, |f| f.set_len(len))?,
                    None => OpenOptions::new()
                        .write(true)
                        .open(self.real(&rel))?
                        .set_len(len)?,
                }
            }
            if let Some(mode) = mode {
                std::fs::set_permissions(
                    self.real(&rel),
                    PermissionsExt::from_mode(mode & 0o7777),
                )?;
            }
            self.stat(&rel)
        })();
        reply!(reply, res, |a| reply.attr(&TTL, &a));
    }

    fn mkdir(
        &self,
        _: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let res = self.child(parent, name).and_then(|p| {
            std::fs::create_dir(self.real(&p))?;
            std::fs::set_permissions(
                self.real(&p),
                PermissionsExt::from_mode(mode & !umask & 0o7777),
            )?;
            self.stat(&p)
        });
        reply!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn unlink(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = self
            .child(parent, name)
            .and_then(|p| Ok(std::fs::remove_file(self.real(&p))?));
        reply!(reply, res, |_v| reply.ok());
    }

    fn rmdir(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = self
            .child(parent, name)
            .and_then(|p| Ok(std::fs::remove_dir(self.real(&p))?));
        reply!(reply, res, |_v| reply.ok());
    }

    fn rename(
        &self,
        _: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let res = (|| {
            let (from, to) = (self.child(parent, name)?, self.child(newparent, newname)?);
            std::fs::rename(self.real(&from), self.real(&to))?;
            self.inodes.lock().unwrap().moved(&from, &to);
            Ok(())
        })();
        reply!(reply, res, |_v| reply.ok());
    }

    fn open(&self, _: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let res = self.path(ino).and_then(|p| {
            Ok(OpenOptions::new()
                .read(true)
                .write(write)
                .open(self.real(&p))?)
        });
        reply!(reply, res, |f| reply
            .opened(self.keep(f), FopenFlags::empty()));
    }

    fn create(
        &self,
        _: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let res = self.child(parent, name).and_then(|p| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .create_new(flags & libc::O_EXCL != 0)
                .truncate(flags & libc::O_TRUNC != 0)
                .mode(mode & !umask & 0o7777)
                .open(self.real(&p))?;
            Ok((self.stat(&p)?, f))
        });
        reply!(reply, res, |v| {
            let (a, f) = v;
            reply.created(&TTL, &a, Generation(0), self.keep(f), FopenFlags::empty())
        });
    }

    fn read(
        &self,
        _: &Request,
        _: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _: OpenFlags,
        _: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let res = self.with_file(fh, |f| {
            let mut buf = vec![0; size as usize];
            let mut n = 0;
            while n < buf.len() {
                match f.read_at(&mut buf[n..], offset + n as u64)? {
                    0 => break,
                    k => n += k,
                }
            }
            buf.truncate(n);
            Ok(buf)
        });
        reply!(reply, res, |b| reply.data(&b));
    }

    fn write(
        &self,
        _: &Request,
        _: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _: WriteFlags,
        _: OpenFlags,
        _: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let res = self.with_file(fh, |f| f.write_all_at(data, offset));
        reply!(reply, res, |_v| reply.written(data.len() as u32));
    }

    fn flush(&self, _: &Request, _: INodeNo, _: FileHandle, _: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _: &Request,
        _: INodeNo,
        fh: FileHandle,
        _: OpenFlags,
        _: Option<LockOwner>,
        _: bool,
        reply: ReplyEmpty,
    ) {
        self.files.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    /// The point of this filesystem: EIO while the test says so.
    fn fsync(&self, _: &Request, _: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        if self.fail_fsync.load(Ordering::Relaxed) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return reply.error(Errno::EIO);
        }
        let res = self.with_file(fh, |f| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
        });
        reply!(reply, res, |_v| reply.ok());
    }

    fn readdir(
        &self,
        _: &Request,
        ino: INodeNo,
        _: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let res = (|| {
            let rel = self.path(ino)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, ".".into()),
                (1, FileType::Directory, "..".into()),
            ];
            let mut names: Vec<_> =
                std::fs::read_dir(self.real(&rel))?.collect::<Result<_, _>>()?;
            names.sort_by_key(|e: &std::fs::DirEntry| e.file_name());
            for e in names {
                let child = rel.join(e.file_name());
                let n = self.inodes.lock().unwrap().number(&child);
                let k = e
                    .file_type()
                    .ok()
                    .and_then(FileType::from_std)
                    .unwrap_or(FileType::RegularFile);
                entries.push((n, k, e.file_name()));
            }
            Ok(entries)
        })();
        let entries = match res {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        for (i, (n, k, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(n), i as u64 + 1, k, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _: &Request, _: INodeNo, _: FileHandle, _: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _: &Request, _: INodeNo, reply: ReplyStatfs) {
        let path = std::ffi::CString::new(self.root.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string and a valid out-pointer.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return reply.error(Errno::EIO);
        }
        reply.statfs(
            st.f_blocks,
            st.f_bfree,
            st.f_bavail,
            st.f_files,
            st.f_ffree,
            st.f_bsize as u32,
            st.f_namemax as u32,
            st.f_frsize as u32,
        );
    }

    fn access(&self, _: &Request, _: INodeNo, _: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _: &Request,
        _: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let res = self.with_file(fh, |f| {
            // SAFETY: a valid open descriptor.
            let rc = unsafe { libc::fallocate(f.as_raw_fd(), mode, offset as i64, length as i64) };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
        reply!(reply, res, |_v| reply.ok());
    }
}

/// The mounted filesystem.
pub struct FaultFs {
    _session: BackgroundSession,
    mount: PathBuf,
    fail_fsync: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
}

impl FaultFs {
    /// Mounts a fresh one; `Err` says why that is not possible here.
    pub fn mount() -> Result<FaultFs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("mounting a FUSE filesystem needs root".into());
        }
        if !Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (root, mount) = (dir.path().join("backing"), dir.path().join("mnt"));
        for d in [&root, &mount] {
            std::fs::create_dir(d).map_err(|e| e.to_string())?;
        }
        let fail_fsync = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicU64::new(0));
        let fs = Passthrough {
            root,
            inodes: Mutex::default(),
            files: Mutex::default(),
            next_fh: AtomicU64::new(1),
            fail_fsync: fail_fsync.clone(),
            failed: failed.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("tern-faultfs".into())];
        let session = fuser::spawn_mount(fs, &mount, &config)
            .map_err(|e| format!("mounting FUSE at {}: {e}", mount.display()))?;
        Ok(FaultFs {
            _session: session,
            mount,
            fail_fsync,
            failed,
            _dir: dir,
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// From now on, every fsync fails with EIO (or works again).
    pub fn fail_fsync(&self, on: bool) {
        self.fail_fsync.store(on, Ordering::Relaxed);
    }

    /// Fsyncs failed so far.
    pub fn fsync_failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}
