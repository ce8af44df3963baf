//! procfs files whose writing changes how the kernel defends itself, or what it runs as root.
//! The kernel recognises an open of one for writing by procfs's superblock and the file's name
//! (`agent-ebpf/src/proc_mem.rs`): sysctl inodes are made afresh whenever their dentry is
//! evicted, so a watch by inode number would lapse.

/// By full path; the kernel matches the last component, which is unique in procfs for each.
pub const KERNEL_SETTINGS: [&str; 13] = [
    // A pipe here runs a program as root on the next crash: persistence, and the way out of a
    // privileged container.
    "/proc/sys/kernel/core_pattern",
    // The program the kernel runs as root to load a module.
    "/proc/sys/kernel/modprobe",
    // Hardening an exploit wants off.
    "/proc/sys/kernel/randomize_va_space",
    "/proc/sys/kernel/yama/ptrace_scope",
    "/proc/sys/kernel/kptr_restrict",
    "/proc/sys/kernel/dmesg_restrict",
    "/proc/sys/kernel/unprivileged_bpf_disabled",
    "/proc/sys/kernel/perf_event_paranoid",
    "/proc/sys/kernel/kexec_load_disabled",
    "/proc/sys/fs/suid_dumpable",
    "/proc/sys/fs/protected_symlinks",
    "/proc/sys/fs/protected_hardlinks",
    // Reboots, crashes or syncs the machine on a single write: a wiper's last step.
    "/proc/sysrq-trigger",
];

/// Bytes of a setting's file name compared (NUL-padded).
pub const SETTING_NAME_LEN: usize = 32;

/// The settings' file names as the kernel compares them: little-endian words of the
/// NUL-padded name.
pub const SETTING_NAMES: [[u64; SETTING_NAME_LEN / 8]; KERNEL_SETTINGS.len()] = {
    let mut out = [[0u64; SETTING_NAME_LEN / 8]; KERNEL_SETTINGS.len()];
    let mut i = 0;
    while i < KERNEL_SETTINGS.len() {
        out[i] = name_words(KERNEL_SETTINGS[i]);
        i += 1;
    }
    out
};

/// The last component of `path`, NUL-padded into words.
const fn name_words(path: &str) -> [u64; SETTING_NAME_LEN / 8] {
    let bytes = path.as_bytes();
    let mut start = bytes.len();
    while start > 0 && bytes[start - 1] != b'/' {
        start -= 1;
    }
    assert!(
        bytes.len() - start < SETTING_NAME_LEN,
        "a setting's name must leave room for its NUL"
    );
    let mut words = [0u64; SETTING_NAME_LEN / 8];
    let mut i = start;
    while i < bytes.len() {
        let at = i - start;
        words[at / 8] |= (bytes[i] as u64) << (8 * (at % 8));
        i += 1;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_last_components_in_little_endian_words() {
        let [a, b, c, d] = SETTING_NAMES[0];
        assert_eq!(a, u64::from_le_bytes(*b"core_pat"));
        assert_eq!(b, u64::from_le_bytes(*b"tern\0\0\0\0"));
        assert_eq!((c, d), (0, 0));
        let trigger = SETTING_NAMES[KERNEL_SETTINGS.len() - 1];
        assert_eq!(trigger[0], u64::from_le_bytes(*b"sysrq-tr"));
        for (i, n) in SETTING_NAMES.iter().enumerate() {
            assert!(
                !SETTING_NAMES[..i].contains(n),
                "{} named twice",
                KERNEL_SETTINGS[i]
            );
        }
    }
}
