//! A real, small filesystem for a test: an ext4 image in a temporary folder,
//! loop-mounted (root only), that a test can fill to the last few KiB and
//! free again. Unmounted when dropped, even when the test panics.
//!
//! Where this cannot work (not root, no `mkfs.ext4`, no loop devices), the
//! constructor says why and the test skips, printing the reason on stderr
//! past the test harness's output capture, so that CI logs show it.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted ext4 image.
pub struct LoopFs {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

/// Prints why a test does not run, so that it shows in a captured test run.
pub fn skip(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "{test}: SKIPPED: {reason}");
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl LoopFs {
    /// Creates a sparse image of `mib` MiB, makes ext4 on it and mounts it.
    /// `Err` says why that is not possible here.
    pub fn mount(mib: u64) -> Result<LoopFs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("mounting a loop device needs root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(mib << 20))
            .map_err(|e| e.to_string())?;
        // No reserved blocks: all the space is the daemon's to fill.
        run(Command::new("mkfs.ext4")
            .args(["-q", "-m", "0"])
            .arg(&image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount))?;
        Ok(LoopFs { mount, _dir: dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Bytes free for an unprivileged writer.
    pub fn free(&self) -> u64 {
        let path = CString::new(self.mount.as_os_str().as_bytes()).expect("no NUL in a temp path");
        // SAFETY: `path` is a valid C string and `st` a valid out-pointer.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        assert_eq!(rc, 0, "statvfs {}", self.mount.display());
        st.f_bavail as u64 * st.f_frsize as u64
    }

    /// Allocates a file (really: blocks, not a sparse hole) so that only
    /// about `leave` bytes stay free.
    pub fn fill_leaving(&self, name: &str, leave: u64) -> PathBuf {
        let path = self.mount.join(name);
        let len = self.free().saturating_sub(leave);
        let f = std::fs::File::create(&path).expect("filler file");
        use std::os::unix::io::AsRawFd;
        // SAFETY: a valid open descriptor; offsets within i64.
        let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len as libc::off_t) };
        assert_eq!(rc, 0, "posix_fallocate {len} bytes");
        path
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // A process still holding files there (a daemon that outlived a
        // failed test) must not keep the mount: detach it lazily then.
        if run(Command::new("umount").arg(&self.mount)).is_err() {
            let _ = run(Command::new("umount").arg("-l").arg(&self.mount));
        }
    }
}
