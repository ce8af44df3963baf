use super::*;

/// Builds a minimal little-endian BTF blob, enough to exercise member lookup without a kernel.
#[derive(Default)]
struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

const KIND_INT: u32 = 1;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;

impl BtfBuilder {
    fn new() -> Self {
        Self {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    fn name(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }

    fn push(&mut self, words: &[u32]) -> u32 {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        self.next_id += 1;
        self.next_id - 1
    }

    fn int(&mut self, name: &str, bytes: u32) -> u32 {
        let n = self.name(name);
        self.push(&[n, KIND_INT << 24, bytes, bytes * 8])
    }

    fn typedef(&mut self, name: &str, target: u32) -> u32 {
        let n = self.name(name);
        self.push(&[n, KIND_TYPEDEF << 24, target])
    }

    /// `members`: (name, type id, bit offset, bitfield size or 0).
    fn composite(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32, u32)],
    ) -> u32 {
        let n = self.name(name);
        let bitfields = members.iter().any(|m| m.3 != 0);
        let info = (kind << 24) | (u32::from(bitfields) << 31) | members.len() as u32;
        let mut words = vec![n, info, size];
        for &(member, ty, bit_offset, bits) in members {
            let offset = if bitfields {
                (bits << 24) | bit_offset
            } else {
                bit_offset
            };
            words.extend([self.name(member), ty, offset]);
        }
        self.push(&words)
    }

    fn build(&self) -> KernelBtf {
        let mut blob = Vec::new();
        blob.extend_from_slice(&0xEB9F_u16.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend_from_slice(&self.types);
        blob.extend_from_slice(&self.strings);
        KernelBtf::from_bytes(blob).expect("synthetic BTF parses")
    }
}

/// task_struct with pid/tgid inside an anonymous struct inside an anonymous union (via a
/// typedef), mm_struct with everything in an anonymous struct, and a bitfield `flags`.
fn synthetic(flags_bit_offset: u32, with_tgid: bool) -> KernelBtf {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let long = b.int("long unsigned int", 8);
    let mut ids = vec![("pid", int, 0, 0)];
    if with_tgid {
        ids.push(("tgid", int, 32, 0));
    }
    let anon_ids = b.composite(KIND_STRUCT, "", 8, &ids);
    let anon_union = b.composite(
        KIND_UNION,
        "",
        8,
        &[("", anon_ids, 0, 0), ("both", long, 0, 0)],
    );
    let anon_alias = b.typedef("", anon_union);
    b.composite(
        KIND_STRUCT,
        "task_struct",
        64,
        &[
            ("flags", int, flags_bit_offset, 3),
            ("", anon_alias, 128, 0),
            ("real_parent", long, 256, 0),
            ("real_start_time", long, 320, 0),
        ],
    );
    let mm_inner = b.composite(
        KIND_STRUCT,
        "",
        40,
        &[
            ("exe_file", long, 0, 0),
            ("arg_start", long, 64, 0),
            ("arg_end", long, 128, 0),
            ("env_start", long, 192, 0),
            ("env_end", long, 256, 0),
        ],
    );
    b.composite(KIND_STRUCT, "mm_struct", 64, &[("", mm_inner, 64, 0)]);
    b.build()
}

#[test]
fn anonymous_members_add_their_offsets() {
    let (offsets, missing) = resolve_in(&synthetic(0, true)).expect("resolves");
    assert_eq!(offsets.task_pid, 16);
    assert_eq!(offsets.task_tgid, 20);
    assert_eq!(offsets.task_real_parent, 32);
    assert_eq!(offsets.task_flags, 0);
    // Older name used when the current one is absent.
    assert_eq!(offsets.task_start_boottime, 40);
    assert_eq!(offsets.mm_arg_start, 16);
    assert_eq!(offsets.mm_arg_end, 24);
    assert_eq!((offsets.mm_env_start, offsets.mm_env_end), (32, 40));
    assert_eq!(offsets.mm_exe_file, 8);
    // Absent structs/fields are reported, not fatal.
    assert_eq!(offsets.cred_uid, OFFSET_UNKNOWN);
    assert_eq!(offsets.signal_live, OFFSET_UNKNOWN);
    let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
    assert!(names.contains(&"cred.euid".to_string()), "{names:?}");
    assert!(names.contains(&"task_struct.mm".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("mm_struct")),
        "{names:?}"
    );
}

#[test]
fn byte_aligned_bitfield_resolves_and_unaligned_fails() {
    let (offsets, _) = resolve_in(&synthetic(24, true)).expect("resolves");
    assert_eq!(offsets.task_flags, 3);
    let err = resolve_in(&synthetic(5, true)).expect_err("unaligned");
    assert!(
        matches!(
            err,
            BtfError::Unaligned {
                field: "flags",
                bit_offset: 5,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_required_field_is_an_error_naming_it() {
    let err = resolve_in(&synthetic(0, false)).expect_err("tgid missing");
    assert!(err.to_string().contains("task_struct.tgid"), "{err}");
}

#[test]
fn unreadable_file_is_a_parse_error() {
    let err = resolve_offsets(Path::new("/nonexistent/vmlinux")).expect_err("no file");
    assert!(matches!(err, BtfError::Parse { .. }), "{err}");
}

#[test]
fn running_kernel_offsets_are_plausible() {
    if !Path::new(VMLINUX_BTF).exists() {
        println!("skipped: no kernel BTF at {VMLINUX_BTF}");
        return;
    }
    let (o, missing) = resolve_from_sys().expect("resolve");
    println!("{o:#?}\nmissing: {missing:?}");
    assert!(
        missing.is_empty(),
        "a 5.5+ kernel has every field: {missing:?}"
    );
    assert_eq!(
        o.task_tgid,
        o.task_pid + 4,
        "pid_t pid; pid_t tgid; are adjacent"
    );
    assert_eq!(o.mm_arg_end, o.mm_arg_start + 8);
    assert_eq!((o.mm_env_start, o.mm_env_end), (o.mm_arg_start + 16, o.mm_arg_start + 24));
    assert_eq!(o.cred_gid, o.cred_uid + 4);
    // struct sock_common opens with the address pair (daddr first), then the hash, then the
    // port pair (dport first); the family follows it.
    assert_eq!((o.sock_common_daddr, o.sock_common_dport, o.sock_common_family), (0, 12, 16));
    assert!(o.sock_common_v6_daddr > o.sock_common_family && o.sock_common_v6_daddr % 4 == 0);
    for cred in [
        o.cred_uid,
        o.cred_gid,
        o.cred_suid,
        o.cred_sgid,
        o.cred_euid,
        o.cred_egid,
        o.cred_fsuid,
        o.cred_fsgid,
    ] {
        assert!(cred < 256, "cred field at {cred}");
    }
    // task_struct is several KiB; flags sits near its start (after thread_info and __state).
    assert!(o.task_flags < 64);
    for ptr in [
        o.task_real_parent,
        o.task_group_leader,
        o.task_real_cred,
        o.task_mm,
        o.task_signal,
    ] {
        assert!(
            ptr > o.task_flags && ptr < 16384 && ptr % 8 == 0,
            "pointer at {ptr}"
        );
    }
    assert!(o.task_start_boottime % 8 == 0);
    assert!(o.signal_live < 64 && o.signal_live % 4 == 0);
    // mm_struct's anonymous struct starts after the first cache line; a result below that
    // would mean the anonymous offset was not added.
    assert!(o.mm_arg_start >= 64);
}

/// Independent check: bpftool's raw dump of the same BTF, for members that sit directly in
/// their struct (no anonymous nesting to add up).
#[test]
fn running_kernel_offsets_match_bpftool() {
    let Ok(out) = std::process::Command::new("bpftool")
        .args(["btf", "dump", "file", VMLINUX_BTF, "format", "raw"])
        .output()
    else {
        println!("skipped: bpftool not installed");
        return;
    };
    if !out.status.success() {
        println!(
            "skipped: bpftool failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dump = String::from_utf8_lossy(&out.stdout);
    let (o, _) = resolve_from_sys().expect("resolve");
    for (strukt, field, ours) in [
        ("task_struct", "pid", o.task_pid),
        ("task_struct", "tgid", o.task_tgid),
        ("task_struct", "real_parent", o.task_real_parent),
        ("task_struct", "real_cred", o.task_real_cred),
        ("signal_struct", "live", o.signal_live),
        ("cred", "euid", o.cred_euid),
    ] {
        let bits = bpftool_member_bits(&dump, strukt, field).expect("member in bpftool dump");
        assert_eq!(bits / 8, ours, "{strukt}.{field}");
    }
}

fn bpftool_member_bits(dump: &str, strukt: &str, field: &str) -> Option<u32> {
    let header = format!("STRUCT '{strukt}' size=");
    let needle = format!("\t'{field}' type_id=");
    dump.lines()
        .skip_while(|l| !l.contains(&header))
        .skip(1)
        .take_while(|l| l.starts_with('\t'))
        .find(|l| l.starts_with(&needle))?
        .split("bits_offset=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn malformed_btf_is_refused_with_what_is_wrong() {
    let err = |blob: Vec<u8>| KernelBtf::from_bytes(blob).err().expect("refused");
    assert!(err(vec![0x9f]).contains("header"));
    assert!(err(vec![0x9f, 0xeb, 1, 0]).contains("header"));
    let mut b = BtfBuilder::new();
    b.int("int", 4);
    let good = {
        let mut blob = Vec::new();
        blob.extend_from_slice(&0xEB9F_u16.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, b.types.len() as u32, b.types.len() as u32, b.strings.len() as u32] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend_from_slice(&b.types);
        blob.extend_from_slice(&b.strings);
        blob
    };
    assert!(KernelBtf::from_bytes(good.clone()).is_ok());
    let mut big_endian = good.clone();
    big_endian.swap(0, 1);
    assert!(err(big_endian).contains("magic"));
    // The string section said to run past the end of the blob.
    assert!(err(good[..good.len() - 1].to_vec()).contains("past the end"));
    // A kind BTF does not define.
    let mut unknown = good.clone();
    unknown[24 + 7] = 31; // the top byte of info: kind 31
    assert!(err(unknown).contains("unknown kind"));
    // A type record longer than the section holding it (an INT without its extra word).
    let mut cut = good;
    let types_len = u32::from_le_bytes(cut[12..16].try_into().unwrap()) - 4;
    cut[12..16].copy_from_slice(&types_len.to_le_bytes());
    cut[16..20].copy_from_slice(&types_len.to_le_bytes());
    assert!(err(cut).contains("runs past"));
}

#[test]
fn a_forward_declaration_is_not_the_struct() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let fwd_name = b.name("task_struct");
    b.push(&[fwd_name, 7 << 24, 0]); // BTF_KIND_FWD
    let id = b.composite(KIND_STRUCT, "task_struct", 8, &[("pid", int, 0, 0), ("tgid", int, 32, 0), ("real_parent", int, 0, 0)]);
    let btf = b.build();
    assert_eq!(btf.find_struct("task_struct"), Some(id));
    let (offsets, _) = resolve_in(&btf).expect("resolves");
    assert_eq!(offsets.task_tgid, 4);
}

#[test]
fn every_kind_s_trailing_data_is_stepped_over() {
    // One record of each kind with data after its 12-byte header, ahead of the struct: a wrong
    // size for any of them would misplace every type after it.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let e = b.name("e");
    b.push(&[0, 3 << 24, 0, int, int, 4]); // ARRAY: type, index type, nelems
    b.push(&[0, (6 << 24) | 2, 4, e, 0, e, 1]); // ENUM, two values
    b.push(&[0, (13 << 24) | 1, int, e, int]); // FUNC_PROTO, one parameter
    b.push(&[e, 14 << 24, int, 1]); // VAR: linkage
    b.push(&[e, (15 << 24) | 1, 8, int, 0, 4]); // DATASEC, one variable
    b.push(&[e, 17 << 24, int, u32::MAX]); // DECL_TAG: component index
    b.push(&[0, (19 << 24) | 1, 8, e, 0, 1]); // ENUM64, one value
    b.push(&[0, 18 << 24, int]); // TYPE_TAG: nothing after the header
    let id = b.composite(KIND_STRUCT, "task_struct", 16, &[("pid", int, 0, 0), ("tgid", int, 32, 0), ("real_parent", int, 64, 0)]);
    let btf = b.build();
    assert_eq!(btf.find_struct("task_struct"), Some(id));
    let (offsets, _) = resolve_in(&btf).expect("resolves");
    assert_eq!((offsets.task_pid, offsets.task_tgid, offsets.task_real_parent), (0, 4, 8));
}
