//! A fake `/proc` tree in a tempdir, for tests.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

pub struct FakeProcess<'a> {
    pub pid: u32,
    pub ppid: u32,
    pub comm: &'a str,
    pub state: char,
    pub flags: u32,
    pub start_ticks: u64,
    pub uid: (u32, u32),
    pub gid: (u32, u32),
    pub cmdline: &'a [&'a str],
    /// Target of the `exe` link; `None` for kernel threads.
    pub exe: Option<&'a str>,
}

impl Default for FakeProcess<'_> {
    fn default() -> Self {
        Self {
            pid: 1,
            ppid: 0,
            comm: "init",
            state: 'S',
            flags: 0x0040_0100,
            start_ticks: 1,
            uid: (0, 0),
            gid: (0, 0),
            cmdline: &[],
            exe: None,
        }
    }
}

pub struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Non-numeric entries a real /proc has; seeding must ignore them.
        fs::create_dir(dir.path().join("sys")).unwrap();
        symlink("1", dir.path().join("self")).unwrap();
        Self { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn add(&self, p: &FakeProcess<'_>) {
        let dir = self.root().join(p.pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        // Fields 23..=51 are zero; field 52 is the exit code.
        let tail = vec!["0"; 29].join(" ");
        let stat = format!(
            "{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 {flags} 0 0 0 0 0 0 0 0 20 0 1 0 {start} {tail} 256\n",
            pid = p.pid,
            comm = p.comm,
            state = p.state,
            ppid = p.ppid,
            flags = p.flags,
            start = p.start_ticks,
        );
        fs::write(dir.join("stat"), stat).unwrap();
        let status = format!(
            "Name:\t{}\nUid:\t{u}\t{eu}\t{eu}\t{eu}\nGid:\t{g}\t{eg}\t{eg}\t{eg}\n",
            p.comm,
            u = p.uid.0,
            eu = p.uid.1,
            g = p.gid.0,
            eg = p.gid.1,
        );
        fs::write(dir.join("status"), status).unwrap();
        let mut cmdline = Vec::new();
        for a in p.cmdline.iter() {
            cmdline.extend_from_slice(a.as_bytes());
            cmdline.push(0);
        }
        fs::write(dir.join("cmdline"), cmdline).unwrap();
        if let Some(exe) = p.exe {
            symlink(exe, dir.join("exe")).unwrap();
        }
    }

    /// A pid directory whose files are already gone, as when a process exits mid-walk.
    pub fn add_vanished(&self, pid: u32) {
        fs::create_dir_all(self.root().join(pid.to_string())).unwrap();
    }
}
