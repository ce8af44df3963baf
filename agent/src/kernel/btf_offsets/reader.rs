//! Just enough of a BTF reader to find struct members by name, over the raw bytes.
//!
//! The kernel's BTF is ~5.5 MB with ~150k types. A general BTF crate turns every type and string
//! into an owned object and hash map entry (btf-rs peaked at ~60 MB of heap here, most of vigil's
//! start-up high-water mark), while vigil needs the members of a dozen structs. This keeps the file's
//! bytes and one offset per type, and decodes a type only when asked. Format:
//! <https://docs.kernel.org/bpf/btf.html>.

const MAGIC: u16 = 0xEB9F;
const HEADER_LEN: usize = 24;
const TYPE_LEN: usize = 12;
const MEMBER_LEN: usize = 12;

// BTF_KIND_* values.
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// A parsed BTF blob: its bytes and where each type starts.
pub struct KernelBtf {
    bytes: Vec<u8>,
    /// Start of the type section and of the string section, in `bytes`.
    types_at: usize,
    strings: std::ops::Range<usize>,
    /// Byte offset (in `bytes`) of type id `i + 1`; id 0 is `void`.
    type_at: Vec<u32>,
}

/// One member of a struct or union.
pub struct Member<'a> {
    pub name: &'a str,
    pub type_id: u32,
    pub bit_offset: u32,
}

/// What a type id names, as far as member lookup cares.
pub enum Kind {
    /// A struct or union, by type id.
    Composite(u32),
    /// typedef, const, volatile, restrict or type tag: look through to the type it names.
    Alias(u32),
    Other,
}

impl KernelBtf {
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        Self::from_bytes(std::fs::read(path).map_err(|e| e.to_string())?)
    }

    /// Checks the header and walks the type section once, recording where each type starts.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let magic = u16_at(0).ok_or("shorter than a BTF header")?;
        if magic != MAGIC {
            return Err(format!(
                "magic {magic:#06x}, expected {MAGIC:#06x} (little-endian BTF)"
            ));
        }
        if bytes.get(2) != Some(&1) {
            return Err(format!("version {:?}, expected 1", bytes.get(2)));
        }
        let word = |at: usize| read_u32(&bytes, at).ok_or("shorter than a BTF header");
        let hdr_len = word(4)? as usize;
        if hdr_len < HEADER_LEN {
            return Err(format!("header length {hdr_len}, expected at least {HEADER_LEN}"));
        }
        let section = |off: usize, len: usize| -> Result<std::ops::Range<usize>, String> {
            let start = hdr_len.checked_add(word(off)? as usize).ok_or("section offset overflows")?;
            let end = start.checked_add(word(len)? as usize).ok_or("section length overflows")?;
            if end > bytes.len() {
                return Err(format!("section {start}..{end} past the end ({} bytes)", bytes.len()));
            }
            Ok(start..end)
        };
        let types = section(8, 12)?;
        let strings = section(16, 20)?;
        let mut type_at = Vec::new();
        let mut at = types.start;
        while at < types.end {
            let info = read_u32(&bytes, at + 4).ok_or("type record cut short")?;
            let vlen = (info & 0xffff) as usize;
            let extra = match kind_of(info) {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                k => return Err(format!("type {} has unknown kind {k}", type_at.len() + 1)),
            };
            type_at.push(u32::try_from(at).map_err(|_| "BTF larger than 4 GiB")?);
            at += TYPE_LEN + extra;
        }
        if at != types.end {
            return Err("the last type record runs past the type section".into());
        }
        Ok(Self {
            types_at: types.start,
            strings,
            type_at,
            bytes,
        })
    }

    /// Id of the struct named `name` (not a forward declaration of it), if there is one.
    pub fn find_struct(&self, name: &str) -> Option<u32> {
        (1..=self.type_at.len() as u32).find(|&id| {
            self.header(id).is_some_and(|(name_off, info, _)| {
                kind_of(info) == KIND_STRUCT && self.string(name_off) == Some(name)
            })
        })
    }

    /// The members of struct or union `id`, in order.
    pub fn members(&self, id: u32) -> Result<Vec<Member<'_>>, String> {
        let (_, info, _) = self.header(id).ok_or_else(|| format!("no type {id}"))?;
        if !matches!(kind_of(info), KIND_STRUCT | KIND_UNION) {
            return Err(format!("type {id} is not a struct or union"));
        }
        let bitfields = info >> 31 == 1;
        let first = self.type_at[id as usize - 1] as usize + TYPE_LEN;
        (0..(info & 0xffff) as usize)
            .map(|i| {
                let at = first + i * MEMBER_LEN;
                let word = |k: usize| read_u32(&self.bytes, at + 4 * k).ok_or("member cut short");
                let (name_off, type_id, offset) = (word(0)?, word(1)?, word(2)?);
                let name = self
                    .string(name_off)
                    .ok_or_else(|| format!("member name at string offset {name_off} is not a string"))?;
                // With the kind flag, the top 8 bits hold the bitfield size.
                let bit_offset = if bitfields { offset & 0x00ff_ffff } else { offset };
                Ok(Member { name, type_id, bit_offset })
            })
            .collect()
    }

    pub fn kind(&self, id: u32) -> Result<Kind, String> {
        let (_, info, target) = self.header(id).ok_or_else(|| format!("no type {id}"))?;
        Ok(match kind_of(info) {
            KIND_STRUCT | KIND_UNION => Kind::Composite(id),
            KIND_TYPEDEF | KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPE_TAG => {
                Kind::Alias(target)
            }
            _ => Kind::Other,
        })
    }

    /// (name offset, info, size or referenced type) of type `id`.
    fn header(&self, id: u32) -> Option<(u32, u32, u32)> {
        let at = *self.type_at.get((id as usize).checked_sub(1)?)? as usize;
        debug_assert!(at >= self.types_at);
        Some((
            read_u32(&self.bytes, at)?,
            read_u32(&self.bytes, at + 4)?,
            read_u32(&self.bytes, at + 8)?,
        ))
    }

    fn string(&self, off: u32) -> Option<&str> {
        let start = self.strings.start.checked_add(off as usize)?;
        let rest = self.bytes.get(start..self.strings.end)?;
        let len = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..len]).ok()
    }
}

fn kind_of(info: u32) -> u32 {
    (info >> 24) & 0x1f
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
