//! Programs dressed as kernel threads. ps, top and htop print a kernel thread's name in brackets
//! (it has no command line), and a few names (kworker, kswapd, ksoftirqd ...) are on every
//! host, so a miner or an implant that runs as `[kworker/0:2]` or `kswapd0` hides in plain
//! sight. Kernel threads never exec: an exec that takes such a name is always a disguise.

/// Names of kernel threads on any Linux host, as prefixes (most carry a CPU or an index).
const KERNEL_THREADS: [&str; 15] = [
    "kworker/",
    "ksoftirqd/",
    "migration/",
    "cpuhp/",
    "watchdog/",
    "irq/",
    "jbd2/",
    "rcu_sched",
    "rcu_preempt",
    "kswapd",
    "kthreadd",
    "kdevtmpfs",
    "khugepaged",
    "kcompactd",
    "kauditd",
];

/// What about an exec dresses it as a kernel thread, for the incident: its `argv[0]` (raw,
/// NUL-separated argv as the exec record carries it) or the file name of its image.
pub fn kernel_thread_disguise(args: &[u8], filename: &str) -> Option<String> {
    let argv0 = args.split(|&b| b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0);
    if looks_like_kernel_thread(&argv0) {
        return Some(format!("argv[0] `{argv0}` passes for a kernel thread"));
    }
    let base = filename.rsplit('/').next().unwrap_or(filename);
    looks_like_kernel_thread(base)
        .then(|| format!("image named `{base}` passes for a kernel thread"))
}

/// A thread that named itself like a kernel thread (`prctl(PR_SET_NAME)`, `pthread_setname_np`):
/// the same disguise without an exec, as miners do once started. The kernel keeps 15 bytes of
/// the name, so a bracket that opens it need not close.
pub fn renamed_thread_disguise(name: &str, tid: u64) -> Option<String> {
    let name: String = name.chars().take(15).collect();
    (looks_like_kernel_thread(&name) || (name.len() > 2 && name.starts_with('[')))
        .then(|| format!("prctl(PR_SET_NAME) of thread {tid} to `{name}`, which passes for a kernel thread"))
}

fn looks_like_kernel_thread(name: &str) -> bool {
    let bracketed = name.len() > 2 && name.starts_with('[') && name.ends_with(']');
    bracketed || KERNEL_THREADS.iter().any(|k| name.starts_with(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_renamed_like_kernel_threads_are_disguised_and_thread_pools_are_not() {
        assert_eq!(
            renamed_thread_disguise("[kworker/0:2H-events_highpri]", 77).as_deref(),
            Some("prctl(PR_SET_NAME) of thread 77 to `[kworker/0:2H-e`, which passes for a kernel thread")
        );
        assert!(renamed_thread_disguise("kswapd0", 1).is_some());
        assert!(renamed_thread_disguise("ksoftirqd/3", 1).is_some());
        // What the kernel's four-byte filter lets through, judged on the whole name.
        assert!(renamed_thread_disguise("irq/9-acpi", 1).is_some());
        for name in ["kworkerpool", "watcher", "migrate-db", "rcu_cleanup", "["] {
            assert!(renamed_thread_disguise(name, 1).is_none(), "{name}");
        }
    }

    #[test]
    fn bracketed_or_kernel_named_programs_are_disguised() {
        assert_eq!(
            kernel_thread_disguise(b"[kworker/0:2]\0/tmp/x\0", "/usr/bin/python3.11").as_deref(),
            Some("argv[0] `[kworker/0:2]` passes for a kernel thread")
        );
        assert_eq!(
            kernel_thread_disguise(b"kswapd0\0speed\0", "/usr/bin/openssl").as_deref(),
            Some("argv[0] `kswapd0` passes for a kernel thread")
        );
        assert_eq!(
            kernel_thread_disguise(b"./kdevtmpfsi\0", "/tmp/kdevtmpfsi").as_deref(),
            Some("image named `kdevtmpfsi` passes for a kernel thread")
        );
        assert!(kernel_thread_disguise(b"[x]\0", "/bin/sh").is_some());
    }

    #[test]
    fn ordinary_programs_and_process_titles_are_not() {
        for (args, file) in [
            (&b"nginx: worker process\0"[..], "/usr/sbin/nginx"),
            (
                b"postgres: checkpointer\0",
                "/usr/lib/postgresql/15/bin/postgres",
            ),
            (b"/usr/bin/kwrite\0", "/usr/bin/kwrite"),
            (b"[\0", "/usr/bin/["),
            (b"[]\0", "/usr/bin/["),
            (b"", "/usr/bin/true"),
        ] {
            assert_eq!(kernel_thread_disguise(args, file), None, "{file}");
        }
    }
}
