//! Scripts a network client wrote, run by an interpreter. `curl -o x.sh URL; sh x.sh` is
//! `curl URL | sh` with a file between; the exec's image is the shell, long installed, so the
//! kernel's writer of the image (`ExecEvent::written_by`) says nothing. The script is found
//! on the command line (where the kernel also puts it when a `#!` line named the interpreter),
//! and its writer is looked up by inode in the map the kernel keeps for images (`CREATED`).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use agent_common::{CreatedBy, FileKey};
use aya::maps::{HashMap, Map, MapData};
use tracing::{debug, warn};

/// The kernel's record of which process last created or truncated each file (`CREATED`), read
/// by inode.
pub struct FileWriters {
    map: HashMap<MapData, FileKey, CreatedBy>,
}

impl FileWriters {
    /// `None` (logged) if the map is not a hash of the expected shape.
    pub fn new(map: Map) -> Option<Self> {
        match HashMap::try_from(map) {
            Ok(map) => Some(Self { map }),
            Err(e) => {
                warn!(
                    "CREATED map unusable ({e}): scripts run by interpreters are not checked for their writer"
                );
                None
            }
        }
    }

    /// Who last wrote the regular file at `path`, if the kernel remembers.
    pub fn writer_of(&self, path: &Path) -> Option<CreatedBy> {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        let key = FileKey {
            ino: meta.ino(),
            dev: (libc::major(meta.dev()) << 20) | libc::minor(meta.dev()),
            _pad: 0,
        };
        match self.map.get(&key, 0) {
            Ok(by) => Some(by),
            Err(e) => {
                debug!(path = %path.display(), "no writer remembered: {e}");
                None
            }
        }
    }
}

/// The script a process runs, as its command line names it: the operand of a known
/// interpreter named by the exec'd path (`sh x.sh`), or by the running image when the kernel
/// ran the script through its `#!` line and put its path among the arguments (`./x.sh`). A
/// script run through its `#!` line from a `bin` directory is an installed command (a console
/// script pip wrote into `/usr/local/bin` or a virtualenv), not looked at.
pub fn script_operand<'a>(
    filename: &str,
    image: Option<&str>,
    args: &'a [String],
) -> Option<&'a str> {
    let operands = args.get(1..).unwrap_or_default();
    if let Some(script) = script_argument(basename(filename), operands) {
        return Some(script);
    }
    let script = script_argument(basename(image?), operands)?;
    let installed = Path::new(script)
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "bin");
    (!installed).then_some(script)
}

/// Where `pid` finds `script` (a path as its command line gave it): through its own root or
/// working directory, which hold in another mount namespace too.
pub fn in_process(pid: u32, script: &str) -> PathBuf {
    match script.strip_prefix('/') {
        Some(abs) => PathBuf::from(format!("/proc/{pid}/root")).join(abs),
        None => PathBuf::from(format!("/proc/{pid}/cwd")).join(script),
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// How an interpreter's options read: which letters run code given inline (no file), and
/// which take the next argument as their value.
struct Options {
    /// Letters that, in a short-option cluster, mean the program is not a file (`-c`, `-e`,
    /// `-m`: a module by name, `-s`: standard input).
    inline: &'static str,
    /// Letters whose value is the next argument when they end a cluster.
    valued: &'static str,
    /// Long options that take the next argument.
    valued_long: &'static [&'static str],
    /// Long options that run inline code.
    inline_long: &'static [&'static str],
    /// A letter whose value is the script itself (php's `-f`).
    file: Option<char>,
}

fn options_of(interpreter: &str) -> Option<Options> {
    let name = interpreter.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    Some(match name {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "rbash" => Options {
            inline: "cs",
            valued: "oO",
            valued_long: &["--rcfile", "--init-file"],
            inline_long: &[],
            file: None,
        },
        "python" | "pypy" => Options {
            inline: "cm",
            valued: "WX",
            valued_long: &["--check-hash-based-pycs"],
            inline_long: &[],
            file: None,
        },
        "perl" => Options {
            inline: "eE",
            valued: "",
            valued_long: &[],
            inline_long: &[],
            file: None,
        },
        "ruby" => Options {
            inline: "e",
            valued: "rICEF",
            valued_long: &["--encoding"],
            inline_long: &[],
            file: None,
        },
        "php" | "php-cli" => Options {
            inline: "rBRE",
            valued: "dcz",
            valued_long: &[],
            inline_long: &[],
            file: Some('f'),
        },
        "node" | "nodejs" => Options {
            inline: "ep",
            valued: "r",
            valued_long: &["--require", "--import", "--loader", "--input-type"],
            inline_long: &["--eval", "--print"],
            file: None,
        },
        "lua" | "tclsh" | "wish" => Options {
            inline: "e",
            valued: "l",
            valued_long: &[],
            inline_long: &[],
            file: None,
        },
        _ => return None,
    })
}

/// The script `args` (argv after argv[0]) give `interpreter`, or `None` when it runs code given
/// inline, a module, standard input, or is not an interpreter known here.
pub fn script_argument<'a>(interpreter: &str, args: &'a [String]) -> Option<&'a str> {
    let o = options_of(interpreter)?;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let a = arg.as_str();
        if a == "--" {
            return it.next().map(String::as_str).filter(|s| *s != "-");
        }
        if a == "-" {
            return None;
        }
        if let Some(long) = a.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            let flag = format!("--{name}");
            if o.inline_long.contains(&flag.as_str()) {
                return None;
            }
            if o.valued_long.contains(&flag.as_str()) && !long.contains('=') {
                it.next();
            }
            continue;
        }
        let Some(cluster) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) else {
            return Some(a);
        };
        // Letters after a valued one are its value (`-W ignore`, `-Wignore`).
        for (i, c) in cluster.char_indices() {
            if o.inline.contains(c) {
                return None;
            }
            if o.file == Some(c) {
                let rest = &cluster[i + c.len_utf8()..];
                return if rest.is_empty() {
                    it.next().map(String::as_str)
                } else {
                    Some(&a[a.len() - rest.len()..])
                };
            }
            if o.valued.contains(c) {
                if i + c.len_utf8() == cluster.len() {
                    it.next();
                }
                break;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script<'a>(interpreter: &str, args: &'a [String]) -> Option<&'a str> {
        script_argument(interpreter, args)
    }

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_script_argument_is_the_first_operand_after_the_interpreter_s_options() {
        for (interp, args, want) in [
            ("bash", v(&["/tmp/x.sh", "arg"]), Some("/tmp/x.sh")),
            ("sh", v(&["-x", "-e", "x.sh"]), Some("x.sh")),
            ("bash", v(&["-o", "pipefail", "run.sh"]), Some("run.sh")),
            ("bash", v(&["--rcfile", "rc", "--", "s.sh"]), Some("s.sh")),
            (
                "python3",
                v(&["-u", "-W", "ignore", "/tmp/x.py"]),
                Some("/tmp/x.py"),
            ),
            (
                "python3.11",
                v(&["-Wignore", "-B", "job.py", "-c"]),
                Some("job.py"),
            ),
            ("perl", v(&["-w", "/tmp/x.pl"]), Some("/tmp/x.pl")),
            ("ruby", v(&["-r", "json", "x.rb"]), Some("x.rb")),
            (
                "php",
                v(&["-d", "display_errors=1", "-f", "/var/www/x.php"]),
                Some("/var/www/x.php"),
            ),
            ("php8.2", v(&["-f/tmp/s.php"]), Some("/tmp/s.php")),
            (
                "node",
                v(&["--require", "ts-node/register", "app.js"]),
                Some("app.js"),
            ),
            (
                "node",
                v(&["--max-old-space-size=512", "app.js"]),
                Some("app.js"),
            ),
        ] {
            assert_eq!(script(interp, &args), want, "{interp} {args:?}");
        }
    }

    #[test]
    fn inline_code_modules_standard_input_and_other_programs_have_no_script() {
        for (interp, args) in [
            ("bash", v(&["-c", "curl x | sh"])),
            ("sh", v(&["-ec", "id"])),
            ("bash", v(&["-s"])),
            ("bash", v(&[])),
            ("sh", v(&["-"])),
            ("python3", v(&["-c", "print(1)", "x.py"])),
            ("python3", v(&["-m", "http.server"])),
            ("perl", v(&["-e", "print 1", "x.pl"])),
            ("node", v(&["--eval", "1", "x.js"])),
            ("php", v(&["-r", "echo 1;"])),
            ("curl", v(&["-o", "x.sh", "http://h/x.sh"])),
            ("sh", v(&["--", "-"])),
        ] {
            assert_eq!(script(interp, &args), None, "{interp} {args:?}");
        }
    }

    #[test]
    fn the_script_is_found_by_the_exec_d_path_or_by_the_running_interpreter() {
        // `./x.sh` through its `#!/bin/bash`: the kernel runs bash with the script's path.
        assert_eq!(
            script_operand(
                "./x.sh",
                Some("/usr/bin/bash"),
                &v(&["/bin/bash", "./x.sh"])
            ),
            Some("./x.sh")
        );
        let python = v(&["python3", "/tmp/x.py"]);
        assert_eq!(
            script_operand("/usr/bin/python3", Some("/usr/bin/python3.11"), &python),
            Some("/tmp/x.py")
        );
        assert_eq!(
            script_operand("/usr/bin/ls", None, &v(&["ls", "x.sh"])),
            None
        );
        // An installed command run by its name; the same file given to its interpreter is not.
        let black = v(&["/usr/bin/python3", "/usr/local/bin/black"]);
        assert_eq!(
            script_operand("/usr/local/bin/black", Some("/usr/bin/python3.11"), &black),
            None
        );
        assert_eq!(
            script_operand("/usr/bin/python3", None, &black),
            Some("/usr/local/bin/black")
        );
        assert_eq!(
            in_process(7, "/tmp/x.py"),
            PathBuf::from("/proc/7/root/tmp/x.py")
        );
        assert_eq!(in_process(7, "./x.sh"), PathBuf::from("/proc/7/cwd/./x.sh"));
    }
}
