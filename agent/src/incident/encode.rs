//! journald's native protocol: an entry is a sequence of fields, each either `NAME=value\n` or,
//! when the value contains a newline, `NAME\n` + the value's length as a little-endian u64 +
//! the value + `\n` (the form `sd_journal_sendv` uses, since a newline would end a plain field).

use super::IncidentError;

/// journald's limit on field names (`JOURNAL_FIELD_NAME_MAX`'s client-side check).
const FIELD_NAME_MAX: usize = 64;

/// True when journald accepts `name` from a client: uppercase ASCII letters, digits and `_`,
/// not starting with a digit, and not starting with `_` (those are trusted fields journald sets
/// itself and drops from clients).
pub fn valid_field_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= FIELD_NAME_MAX
        && !bytes[0].is_ascii_digit()
        && bytes[0] != b'_'
        && bytes
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Serializes `fields` into one native-protocol payload.
pub fn encode(fields: &[(String, String)]) -> Result<Vec<u8>, IncidentError> {
    let size = fields.iter().map(|(n, v)| n.len() + v.len() + 10).sum();
    let mut out = Vec::with_capacity(size);
    for (name, value) in fields {
        if !valid_field_name(name) {
            return Err(IncidentError::InvalidFieldName(name.clone()));
        }
        out.extend_from_slice(name.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn single_line_values_use_the_plain_form() {
        let out = encode(&[field("MESSAGE", "hi there"), field("PRIORITY", "4")]).unwrap();
        assert_eq!(out, b"MESSAGE=hi there\nPRIORITY=4\n");
    }

    #[test]
    fn values_with_newlines_are_length_prefixed() {
        let out = encode(&[field("VIGIL_CMDLINE", "a\nb"), field("X", "")]).unwrap();
        let mut want = b"VIGIL_CMDLINE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\nX=\n");
        assert_eq!(out, want);
    }

    #[test]
    fn an_equals_sign_in_a_value_needs_no_escaping() {
        // journald splits a plain field at the first '=' only.
        let out = encode(&[field("VIGIL_CMDLINE", "env A=1 B==2")]).unwrap();
        assert_eq!(out, b"VIGIL_CMDLINE=env A=1 B==2\n");
    }

    #[test]
    fn field_names_follow_journald_rules() {
        for ok in [
            "MESSAGE",
            "VIGIL_POLICY_VERSION",
            "A1",
            "X",
            &"A".repeat(64),
        ] {
            assert!(valid_field_name(ok), "{ok} should be valid");
        }
        for bad in [
            "",
            "_PID",
            "1ABC",
            "vigil_pid",
            "VIGIL-PID",
            "VIGIL PID",
            "VIGIL=X",
            "ÄB",
            &"A".repeat(65),
        ] {
            assert!(!valid_field_name(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn an_invalid_name_is_refused_not_sent() {
        let err = encode(&[field("MESSAGE", "x"), field("vigil_lost", "3")]).unwrap_err();
        assert!(matches!(err, IncidentError::InvalidFieldName(n) if n == "vigil_lost"));
    }
}
