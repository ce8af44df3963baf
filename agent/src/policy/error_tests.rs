//! Every kind of policy error names the file, the line and column, and what was expected.

use super::tests::compile;

const FILE: &str = "/etc/vigil/policy.d/10-web.toml";

fn error(text: &str) -> String {
    compile(&[(FILE, text)])
        .expect_err("invalid policy")
        .to_string()
}

fn rule(kind: &str, body: &str) -> String {
    format!("# a comment\n[[rule.{kind}]]\nname = \"r\"\n{body}\n")
}

#[test]
fn toml_errors_point_at_the_value() {
    assert_eq!(
        error(&rule("exec", "action = \"nuke\"\npath = [\"/a\"]")),
        format!(
            "{FILE}:4:10: invalid value for `rule.exec.action`: unknown variant `nuke`, expected one of `alert`, `kill`, `quarantine`, `deny`"
        )
    );
    assert_eq!(
        error("\n\nmode = enforce\n"),
        format!(
            "{FILE}:3:8: invalid value for `mode`: string values must be quoted, expected literal string"
        )
    );
    assert_eq!(
        error("[response]\nmax_actions = \"ten\"\n"),
        format!(
            "{FILE}:2:15: invalid value for `response.max_actions`: invalid type: string \"ten\", expected u32"
        )
    );
    assert_eq!(
        error(&rule("connect", "action = \"deny\"\nports = [80, 70000]")),
        format!(
            "{FILE}:5:14: invalid value for `rule.connect.ports`: invalid value: integer `70000`, expected u16"
        )
    );
    assert_eq!(
        error("[allow]\nusers = [\"backup\", -1]\n"),
        format!(
            "{FILE}:2:20: invalid value for `allow.users`: invalid value: integer `-1`, expected a uid (integer 0..=4294967295) or a user name (string)"
        )
    );
}

#[test]
fn typos_and_missing_keys_are_errors() {
    assert_eq!(
        error("[response]\nmax_action = 3\n"),
        format!(
            "{FILE}:2:1: in `response`: unknown field `max_action`, expected `max_actions` or `per_seconds`"
        )
    );
    assert_eq!(
        error(&rule("exec", "action = \"kill\"\npaths = [\"/a\"]")),
        format!(
            "{FILE}:5:1: in `rule.exec`: unknown field `paths`, expected one of `name`, `action`, `path`, `sha256`, `parent`, `cmdline`, `except_cmdline`, `stdio_socket`, `parent_stdio_socket`, `parent_accepted`, `changed_within`, `downloaded`, `except_downloader`"
        )
    );
    assert_eq!(
        error("[alow]\n"),
        format!(
            "{FILE}:1:2: unknown field `alow`, expected one of `mode`, `thresholds`, `model`, `response`, `rule`, `allow`, `protected`"
        )
    );
    let second_rule_missing_action = format!(
        "{}[[rule.exec]]\nname = \"s\"\npath = [\"/b\"]\n",
        rule("exec", "action = \"kill\"\npath = [\"/a\"]")
    );
    assert_eq!(
        error(&second_rule_missing_action),
        format!("{FILE}:6:1: in `rule.exec`: missing field `action`")
    );
}

#[test]
fn glob_errors() {
    assert_eq!(
        error(&rule(
            "exec",
            "action = \"kill\"\npath = [\"/ok\", \"/tmp/[ab\"]"
        )),
        format!(
            "{FILE}:5:16: invalid glob `/tmp/[ab` in `path`: unclosed character class; missing ']'"
        )
    );
    assert_eq!(
        error("[protected]\nexe = [\"sshd\"]\n"),
        format!(
            "{FILE}:2:8: invalid glob `sshd` in `protected.exe`: expected an absolute path, or a pattern starting with `/` or `**/`"
        )
    );
    assert_eq!(
        error("[allow]\ncgroups = [\"system.slice/x.service\"]\n"),
        format!(
            "{FILE}:2:12: invalid glob `system.slice/x.service` in `allow.cgroups`: expected an absolute path, or a pattern starting with `/` or `**/`"
        )
    );
}

#[test]
fn address_digest_and_port_errors() {
    assert_eq!(
        error(&rule(
            "connect",
            "action = \"deny\"\naddr = [\"10.0.0.0/33\"]"
        )),
        format!(
            "{FILE}:5:9: invalid address `10.0.0.0/33` in `addr`: expected an IP address or a CIDR such as 10.0.0.0/8 or 2001:db8::/32"
        )
    );
    assert_eq!(
        error(&rule("exec", "action = \"kill\"\nsha256 = [\"abc123\"]")),
        format!("{FILE}:5:11: invalid sha256 `abc123`: expected 64 hex digits, found 6 characters")
    );
    let not_hex = "g".repeat(64);
    assert_eq!(
        error(&format!("[allow]\nsha256 = [\"{not_hex}\"]\n")),
        format!(
            "{FILE}:2:11: invalid sha256 `{not_hex}`: expected 64 hex digits, found 64 characters"
        )
    );
    assert_eq!(
        error(&rule("connect", "action = \"alert\"\nports = [0]")),
        format!("{FILE}:5:10: invalid port 0: expected 1..=65535")
    );
}

#[test]
fn threshold_errors() {
    assert_eq!(
        error("[thresholds]\nalert = 0.9\nquarantine = 0.5\nkill = 0.99\n"),
        format!(
            "{FILE}:3:14: invalid value for `thresholds.quarantine`: 0.5 is below alert = 0.9 (set at {FILE}:2:9); expected 0 < alert <= quarantine <= kill <= 1"
        )
    );
    assert_eq!(
        error("[thresholds]\nalert = 0.0\nquarantine = 0.5\nkill = 0.99\n"),
        format!(
            "{FILE}:2:9: invalid value for `thresholds.alert`: 0 is out of range; expected 0 < alert <= 1"
        )
    );
    assert_eq!(
        error("[thresholds]\nalert = 0.9\nquarantine = 0.95\nkill = 1.5\n"),
        format!(
            "{FILE}:4:8: invalid value for `thresholds.kill`: 1.5 is out of range; expected 0 < kill <= 1"
        )
    );
    assert_eq!(
        error("[thresholds]\nalert = nan\nquarantine = 0.95\nkill = 0.99\n"),
        format!(
            "{FILE}:2:9: invalid value for `thresholds.alert`: NaN is out of range; expected 0 < alert <= 1"
        )
    );
    assert_eq!(
        error("[thresholds]\nalert = 0.9\n"),
        format!(
            "{FILE}:2:9: incomplete `thresholds`: `quarantine` and `kill` not set in any file; expected alert, quarantine and kill together"
        )
    );
    // The order is checked on the merged values, and blames where each was set.
    let err = compile(&[
        (
            "/usr/lib/vigil/policy.toml",
            "[thresholds]\nalert = 0.5\nquarantine = 0.6\nkill = 0.7\n",
        ),
        (FILE, "[thresholds]\nalert = 0.65\n"),
    ])
    .expect_err("order")
    .to_string();
    assert_eq!(
        err,
        format!(
            "/usr/lib/vigil/policy.toml:3:14: invalid value for `thresholds.quarantine`: 0.6 is below alert = 0.65 (set at {FILE}:2:9); expected 0 < alert <= quarantine <= kill <= 1"
        )
    );
}

#[test]
fn user_errors() {
    assert_eq!(
        error("[allow]\nusers = [0, \"nobody-here\"]\n"),
        format!(
            "{FILE}:2:13: unknown user `nobody-here`: expected a user name from the user table"
        )
    );
    assert_eq!(
        error("[allow]\nusers = [\"1000\"]\n"),
        format!(
            "{FILE}:2:10: unknown user `1000`: expected a user name from the user table (write a uid as a bare integer, not a string)"
        )
    );
}

#[test]
fn downloader_exceptions_need_the_condition_and_absolute_globs() {
    assert_eq!(
        error(&rule("exec", "action = \"alert\"\npath = [\"/tmp/**\"]\nexcept_downloader = [\"/usr/bin/apt\"]")),
        format!(
            "{FILE}:6:21: `except_downloader` in rule.exec `r` needs `downloaded = true`: it names downloaders whose programs that condition lets pass"
        )
    );
    assert_eq!(
        error(&rule("exec", "action = \"alert\"\ndownloaded = true\nexcept_downloader = [\"apt\"]")),
        format!(
            "{FILE}:6:22: invalid glob `apt` in `except_downloader`: expected an absolute path, or a pattern starting with `/` or `**/`"
        )
    );
}

#[test]
fn a_bad_cmdline_pattern_is_named_where_it_is_written() {
    assert_eq!(
        error(&rule("exec", "action = \"alert\"\ncmdline = ['ok', 'a(b']")),
        format!("{FILE}:5:18: invalid regular expression `a(b` in `cmdline`: unclosed group")
    );
    assert_eq!(
        error(&rule("exec", "action = \"alert\"\ncmdline = []")),
        format!("{FILE}:5:11: `cmdline` is empty: expected at least one entry, or leave `cmdline` out")
    );
}

#[test]
fn rule_shape_errors() {
    assert_eq!(
        error(&rule("exec", "action = \"kill\"\nstdio_socket = false")),
        format!(
            "{FILE}:3:8: rule.exec `r` has no conditions: expected at least one of path, sha256, parent, cmdline, stdio_socket = true, parent_stdio_socket = true, parent_accepted = true, changed_within, downloaded = true"
        )
    );
    assert_eq!(
        error(&rule("exec", "action = \"alert\"\nchanged_within = 0")),
        format!("{FILE}:5:18: invalid value for `rule.exec.changed_within`: 0; expected seconds, 1..=86400")
    );
    assert_eq!(
        error(&rule("exec", "action = \"alert\"\nchanged_within = -5")),
        format!("{FILE}:5:18: invalid value for `rule.exec.changed_within`: invalid value: integer `-5`, expected u64")
    );
    assert_eq!(
        error(&rule("connect", "action = \"alert\"")),
        format!(
            "{FILE}:3:8: rule.connect `r` has no conditions: expected at least one of addr, ports, exe (to match every destination say so: addr = [\"0.0.0.0/0\", \"::/0\"])"
        )
    );
    assert_eq!(
        error(&rule(
            "connect",
            "action = \"deny\"\nports = [22]\nexe = [\"/usr/bin/bash\"]"
        )),
        format!(
            "{FILE}:6:7: a `deny` rule cannot have `exe`: the kernel hook that refuses connections cannot match the executable; expected action alert, kill or quarantine, or no `exe`"
        )
    );
    assert_eq!(
        error(&rule("exec", "action = \"deny\"\npath = [\"/a\"]")),
        format!(
            "{FILE}:4:10: `deny` is only valid for rule.connect; expected one of alert, kill, quarantine"
        )
    );
    assert_eq!(
        error("[model]\non_kill = \"deny\"\n"),
        format!(
            "{FILE}:2:11: invalid value for `model.on_kill`: `deny` is only valid for rule.connect; expected one of alert, kill, quarantine"
        )
    );
    assert_eq!(
        error(&rule("exec", "action = \"kill\"\npath = []")),
        format!("{FILE}:5:8: `path` is empty: expected at least one entry, or leave `path` out")
    );
    assert_eq!(
        error("[[rule.exec]]\nname = \" \"\naction = \"kill\"\npath = [\"/a\"]\n"),
        format!("{FILE}:2:8: empty rule name: expected a name that alerts can report")
    );
}

#[test]
fn duplicate_rule_names_name_both_files() {
    let a = "[[rule.exec]]\nname = \"dup\"\naction = \"kill\"\npath = [\"/a\"]\n";
    let b = "# connect rules share the name space\n[[rule.connect]]\nname = \"dup\"\naction = \"alert\"\nports = [1]\n";
    let err = compile(&[("/usr/lib/vigil/policy.toml", a), (FILE, b)])
        .expect_err("dup")
        .to_string();
    assert_eq!(
        err,
        format!(
            "{FILE}:3:8: duplicate rule name `dup`, first defined at /usr/lib/vigil/policy.toml:2:8; expected names unique across all policy files"
        )
    );
}

#[test]
fn setting_errors() {
    assert_eq!(
        error("[response]\nper_seconds = 0\n"),
        format!(
            "{FILE}:2:15: invalid value for `response.per_seconds`: 0; expected a window of at least 1 second"
        )
    );
    assert_eq!(
        error("[protected]\ncomm = [\"systemd-journald\"]\n"),
        format!(
            "{FILE}:2:9: invalid comm `systemd-journald` in `protected.comm`: expected at most 15 bytes, as the kernel truncates it (did you mean `systemd-journal`?)"
        )
    );
    // Columns count characters, as editors do, not bytes.
    assert_eq!(
        error("# é\n[allow]\nexe = [\"/é\", \"rel\"]\n"),
        format!(
            "{FILE}:3:14: invalid glob `rel` in `allow.exe`: expected an absolute path, or a pattern starting with `/` or `**/`"
        )
    );
}

#[test]
fn event_rule_errors() {
    assert_eq!(
        error(&rule("event", "action = \"alert\"\nevent = [\"module_load\", \"kexec\"]")),
        format!(
            "{FILE}:5:25: unknown event `kexec`: expected one of module_load, ptrace_attach, bpf_prog_load, gained_root, memfd_create, root_denied, port_scan, fake_kernel_thread, setuid_bit, raw_socket, mass_replace, mass_encryption, piped_download, piped_decode, relay_shell, process_memory_write, deleted_image, file_capability, proc_hidden, kernel_setting, process_memory_read, environ_read, preload_library, agent_signalled, security_service_signalled, bpf_hook_load"
        )
    );
    assert_eq!(
        error(&rule("event", "action = \"alert\"\nexe = [\"/usr/bin/gdb\"]")),
        format!(
            "{FILE}:3:8: rule.event `r` has no `event`: expected a list of module_load, ptrace_attach, bpf_prog_load, gained_root, memfd_create, root_denied, port_scan, fake_kernel_thread, setuid_bit, raw_socket, mass_replace, mass_encryption, piped_download, piped_decode, relay_shell, process_memory_write, deleted_image, file_capability, proc_hidden, kernel_setting, process_memory_read, environ_read, preload_library, agent_signalled, security_service_signalled, bpf_hook_load"
        )
    );
    assert_eq!(
        error(&rule("event", "action = \"alert\"\nevent = []")),
        format!("{FILE}:5:9: `event` is empty: expected at least one entry, or leave `event` out")
    );
    assert_eq!(
        error(&rule("event", "action = \"deny\"\nevent = [\"ptrace_attach\"]")),
        format!(
            "{FILE}:4:10: `deny` is only valid for rule.connect; expected one of alert, kill, quarantine"
        )
    );
    assert_eq!(
        error(&rule("event", "action = \"alert\"\nevents = [\"ptrace_attach\"]")),
        format!(
            "{FILE}:5:1: in `rule.event`: unknown field `events`, expected one of `name`, `action`, `event`, `exe`, `except_exe`, `except_parent`"
        )
    );
}

#[test]
fn file_rule_errors_name_the_paths_accesses_and_actions_expected() {
    assert_eq!(
        error(&rule("file", "action = \"alert\"\naccess = [\"read\"]")),
        format!("{FILE}:3:8: rule.file `r` has no `path`: expected a list of absolute paths or globs")
    );
    assert_eq!(
        error(&rule("file", "action = \"alert\"\npath = [\"/etc/shadow\", \"**/shadow\"]")),
        format!(
            "{FILE}:5:24: invalid path `**/shadow` in rule.file: expected an absolute path or a glob starting with `/`"
        )
    );
    assert_eq!(
        error(&rule("file", "action = \"alert\"\npath = [\"/etc/shadow\"]\naccess = [\"read\", \"exec\"]")),
        format!("{FILE}:6:19: unknown access `exec`: expected one of read, write, truncate, rewrite, delete")
    );
    assert_eq!(
        error(&rule("file", "action = \"alert\"\npath = [\"/etc/shadow\"]\naccess = []")),
        format!("{FILE}:6:10: `access` is empty: expected at least one entry, or leave `access` out")
    );
    assert_eq!(
        error(&rule("file", "action = \"deny\"\npath = [\"/etc/shadow\"]")),
        format!(
            "{FILE}:4:10: `deny` is only valid for rule.connect (an open is seen once it has happened); expected one of alert, kill, quarantine"
        )
    );
    assert_eq!(
        error(&rule("file", "action = \"alert\"\npath = [\"/etc/shadow\"]\nexcept_exe = [\"sshd\"]")),
        format!(
            "{FILE}:6:15: invalid glob `sshd` in `except_exe`: expected an absolute path, or a pattern starting with `/` or `**/`"
        )
    );
    assert_eq!(
        error(&rule("file", "action = \"alert\"\npaths = [\"/etc/shadow\"]")),
        format!(
            "{FILE}:5:1: in `rule.file`: unknown field `paths`, expected one of `name`, `action`, `path`, `access`, `exe`, `except_exe`"
        )
    );
}
