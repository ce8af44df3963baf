//! The response maps the kernel programs read: mode, protected tgids, exec deny trie,
//! quarantined cgroups and processes, the outbound deny tries and the watched files. User space is
//! their only writer.

use std::{collections::HashSet, net::IpAddr};

use agent_common::{
    FILE_FILTER_WORDS, FILE_WALK_ENTRIES, FileKey, FileWatch, NET4_KEY_LEN, NET6_KEY_LEN,
    PATH_LEN, RESPONSE_ENFORCE, RESPONSE_MONITOR, file_filter_bit, names,
};
use aya::maps::{
    Array, HashMap as BpfHashMap, Map, MapData, MapError,
    lpm_trie::{Key, LpmTrie},
};
use thiserror::Error;

use crate::policy::{KernelExecMatch, Mode};

#[derive(Debug, Error)]
pub enum KernelMapError {
    #[error("response map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("response map `{0}` is missing from the eBPF object")]
    Missing(&'static str),
    #[error("deny-exec path {0:?} is longer than the kernel's {PATH_LEN}-byte key")]
    PathTooLong(String),
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> KernelMapError {
    move |source| KernelMapError::Map { name, source }
}

pub struct KernelResponse {
    mode: Array<MapData, u32>,
    protected: BpfHashMap<MapData, u32, u8>,
    protected_comms: BpfHashMap<MapData, [u8; 16], u8>,
    deny_exec: LpmTrie<MapData, [u8; PATH_LEN], u32>,
    quarantined: BpfHashMap<MapData, u64, u8>,
    quarantined_tgids: BpfHashMap<MapData, u32, u8>,
    deny_net4: LpmTrie<MapData, [u8; NET4_KEY_LEN], u32>,
    deny_net6: LpmTrie<MapData, [u8; NET6_KEY_LEN], u32>,
    watched_files: BpfHashMap<MapData, FileKey, FileWatch>,
    file_walk: Array<MapData, u32>,
    file_filter: Array<MapData, u64>,
    watched_paths: LpmTrie<MapData, [u8; PATH_LEN], u32>,
    signal_guarded: BpfHashMap<MapData, u32, u8>,
    /// Whether connect/sendmsg guards are attached (a quarantine can cut the network).
    pub network_guards: bool,
}

impl KernelResponse {
    /// Takes the response maps out of the loaded object.
    pub fn new(
        mut take: impl FnMut(&'static str) -> Option<Map>,
        network_guards: bool,
    ) -> Result<Self, KernelMapError> {
        let mut get = |name: &'static str| take(name).ok_or(KernelMapError::Missing(name));
        Ok(Self {
            mode: Array::try_from(get(names::MAP_RESPONSE_MODE)?)
                .map_err(map_err(names::MAP_RESPONSE_MODE))?,
            protected: BpfHashMap::try_from(get(names::MAP_PROTECTED_TGIDS)?)
                .map_err(map_err(names::MAP_PROTECTED_TGIDS))?,
            protected_comms: BpfHashMap::try_from(get(names::MAP_PROTECTED_COMMS)?)
                .map_err(map_err(names::MAP_PROTECTED_COMMS))?,
            deny_exec: LpmTrie::try_from(get(names::MAP_DENY_EXEC)?)
                .map_err(map_err(names::MAP_DENY_EXEC))?,
            quarantined: BpfHashMap::try_from(get(names::MAP_QUARANTINED)?)
                .map_err(map_err(names::MAP_QUARANTINED))?,
            quarantined_tgids: BpfHashMap::try_from(get(names::MAP_QUARANTINED_TGIDS)?)
                .map_err(map_err(names::MAP_QUARANTINED_TGIDS))?,
            deny_net4: LpmTrie::try_from(get(names::MAP_DENY_NET4)?)
                .map_err(map_err(names::MAP_DENY_NET4))?,
            deny_net6: LpmTrie::try_from(get(names::MAP_DENY_NET6)?)
                .map_err(map_err(names::MAP_DENY_NET6))?,
            watched_files: BpfHashMap::try_from(get(names::MAP_WATCHED_FILES)?)
                .map_err(map_err(names::MAP_WATCHED_FILES))?,
            file_walk: Array::try_from(get(names::MAP_FILE_WALK)?)
                .map_err(map_err(names::MAP_FILE_WALK))?,
            file_filter: Array::try_from(get(names::MAP_FILE_FILTER)?)
                .map_err(map_err(names::MAP_FILE_FILTER))?,
            watched_paths: LpmTrie::try_from(get(names::MAP_WATCHED_PATHS)?)
                .map_err(map_err(names::MAP_WATCHED_PATHS))?,
            signal_guarded: BpfHashMap::try_from(get(names::MAP_SIGNAL_GUARDED)?)
                .map_err(map_err(names::MAP_SIGNAL_GUARDED))?,
            network_guards,
        })
    }

    pub fn set_mode(&mut self, mode: Mode) -> Result<(), KernelMapError> {
        let v = match mode {
            Mode::Enforce => RESPONSE_ENFORCE,
            Mode::Monitor => RESPONSE_MONITOR,
        };
        self.mode
            .set(0, v, 0)
            .map_err(map_err(names::MAP_RESPONSE_MODE))
    }

    /// Makes the protected set exactly `tgids`.
    pub fn set_protected(&mut self, tgids: &HashSet<u32>) -> Result<(), KernelMapError> {
        let name = names::MAP_PROTECTED_TGIDS;
        let stale: Vec<u32> = self
            .protected
            .keys()
            .filter_map(Result::ok)
            .filter(|t| !tgids.contains(t))
            .collect();
        for t in stale {
            let _ = self.protected.remove(&t);
        }
        for &t in tgids {
            self.protected.insert(t, 1, 0).map_err(map_err(name))?;
        }
        Ok(())
    }

    /// Makes the protected comm set exactly `comms` (longer names are cut to the kernel's 15).
    pub fn set_protected_comms(&mut self, comms: &HashSet<String>) -> Result<(), KernelMapError> {
        let name = names::MAP_PROTECTED_COMMS;
        let wanted: HashSet<[u8; 16]> = comms
            .iter()
            .map(|c| {
                let mut k = [0u8; 16];
                let b = c.as_bytes();
                let n = b.len().min(15);
                k[..n].copy_from_slice(&b[..n]);
                k
            })
            .collect();
        let stale: Vec<[u8; 16]> = self
            .protected_comms
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !wanted.contains(k))
            .collect();
        for k in stale {
            let _ = self.protected_comms.remove(&k);
        }
        for k in wanted {
            self.protected_comms
                .insert(k, 1, 0)
                .map_err(map_err(name))?;
        }
        Ok(())
    }

    /// Makes the watched files exactly `entries` and `FILE_WALK` `walk` (all 0: opens are not
    /// looked at). A walk only shrinks after the entries that needed it are gone, and grows
    /// before the entries that need it arrive.
    pub fn set_file_watches(
        &mut self,
        entries: &std::collections::HashMap<FileKey, FileWatch>,
        walk: &[u32; FILE_WALK_ENTRIES as usize],
        path_keys: &[(u32, [u8; PATH_LEN], u32)],
    ) -> Result<(), KernelMapError> {
        let paths: Vec<(Key<[u8; PATH_LEN]>, u32)> = path_keys
            .iter()
            .map(|(bits, data, access)| (Key::new(*bits, *data), *access))
            .collect();
        replace_trie(&mut self.watched_paths, &paths, names::MAP_WATCHED_PATHS)?;
        let name = names::MAP_WATCHED_FILES;
        let old: Vec<u32> = (0..FILE_WALK_ENTRIES)
            .map(|i| self.file_walk.get(&i, 0).unwrap_or(0))
            .collect();
        let mut filter = vec![0u64; FILE_FILTER_WORDS as usize];
        for k in entries.keys() {
            let bit = file_filter_bit(k.ino);
            filter[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        // The filter covers old and new entries while they change over.
        self.set_filter(&filter, true)?;
        self.set_walk(walk, |new, old| new > old, &old)?;
        for (k, v) in entries {
            self.watched_files.insert(k, v, 0).map_err(map_err(name))?;
        }
        let stale: Vec<FileKey> = self
            .watched_files
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !entries.contains_key(k))
            .collect();
        for k in stale {
            let _ = self.watched_files.remove(&k);
        }
        self.set_walk(walk, |new, old| new < old, &old)?;
        self.set_filter(&filter, false)
    }

    /// Writes the words of `filter` that differ, or'ed into what is there when `merge`.
    fn set_filter(&mut self, filter: &[u64], merge: bool) -> Result<(), KernelMapError> {
        for (i, &want) in filter.iter().enumerate() {
            let i = i as u32;
            let have = self.file_filter.get(&i, 0).unwrap_or(0);
            let new = if merge { have | want } else { want };
            if new != have {
                self.file_filter
                    .set(i, new, 0)
                    .map_err(map_err(names::MAP_FILE_FILTER))?;
            }
        }
        Ok(())
    }

    fn set_walk(
        &mut self,
        walk: &[u32; FILE_WALK_ENTRIES as usize],
        now: impl Fn(u32, u32) -> bool,
        old: &[u32],
    ) -> Result<(), KernelMapError> {
        for (i, (&new, &was)) in walk.iter().zip(old).enumerate() {
            if now(new, was) {
                self.file_walk
                    .set(i as u32, new, 0)
                    .map_err(map_err(names::MAP_FILE_WALK))?;
            }
        }
        Ok(())
    }

    pub fn protect_tgid(&mut self, tgid: u32) -> Result<(), KernelMapError> {
        self.protected
            .insert(tgid, 1, 0)
            .map_err(map_err(names::MAP_PROTECTED_TGIDS))
    }

    pub fn unprotect_tgid(&mut self, tgid: u32) {
        let _ = self.protected.remove(&tgid);
    }

    /// Signals other processes send `tgid` are reported from now on.
    pub fn guard_tgid(&mut self, tgid: u32) -> Result<(), KernelMapError> {
        self.signal_guarded
            .insert(tgid, 1, 0)
            .map_err(map_err(names::MAP_SIGNAL_GUARDED))
    }

    pub fn unguard_tgid(&mut self, tgid: u32) {
        let _ = self.signal_guarded.remove(&tgid);
    }

    /// Replaces the exec deny trie. Entries are inserted before stale ones are removed, so a
    /// rule present in both the old and new policy never has a gap.
    pub fn set_exec_denies(
        &mut self,
        entries: &[(KernelExecMatch, u32)],
    ) -> Result<(), KernelMapError> {
        let name = names::MAP_DENY_EXEC;
        let mut wanted = Vec::with_capacity(entries.len());
        for (m, rule) in entries {
            let (bytes, with_nul) = match m {
                KernelExecMatch::Exact(p) => (p.as_slice(), true),
                KernelExecMatch::Prefix(p) => (p.as_slice(), false),
            };
            let len = bytes.len() + usize::from(with_nul);
            if len > PATH_LEN {
                return Err(KernelMapError::PathTooLong(
                    String::from_utf8_lossy(bytes).into_owned(),
                ));
            }
            let mut data = [0u8; PATH_LEN];
            data[..bytes.len()].copy_from_slice(bytes);
            wanted.push((((len * 8) as u32, data), *rule));
        }
        for ((bits, data), rule) in &wanted {
            self.deny_exec
                .insert(&Key::new(*bits, *data), rule, 0)
                .map_err(map_err(name))?;
        }
        let stale: Vec<Key<[u8; PATH_LEN]>> = self
            .deny_exec
            .keys()
            .filter_map(Result::ok)
            .filter(|k| {
                !wanted
                    .iter()
                    .any(|((bits, data), _)| k.prefix_len() == *bits && k.data() == *data)
            })
            .collect();
        for k in stale {
            let _ = self.deny_exec.remove(&k);
        }
        Ok(())
    }

    /// Replaces the outbound deny tries with `(network, port, rule)` entries.
    pub fn set_net_denies(
        &mut self,
        entries: &[(ipnet::IpNet, Option<u16>, u32)],
    ) -> Result<(), KernelMapError> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (net, port, rule) in entries {
            let port = port.unwrap_or(0).to_be_bytes();
            match net.network() {
                IpAddr::V4(a) => {
                    let mut d = [0u8; NET4_KEY_LEN];
                    d[..2].copy_from_slice(&port);
                    d[2..].copy_from_slice(&a.octets());
                    v4.push((Key::new(16 + u32::from(net.prefix_len()), d), *rule));
                }
                IpAddr::V6(a) => {
                    let mut d = [0u8; NET6_KEY_LEN];
                    d[..2].copy_from_slice(&port);
                    d[2..].copy_from_slice(&a.octets());
                    v6.push((Key::new(16 + u32::from(net.prefix_len()), d), *rule));
                }
            }
        }
        replace_trie(&mut self.deny_net4, &v4, names::MAP_DENY_NET4)?;
        replace_trie(&mut self.deny_net6, &v6, names::MAP_DENY_NET6)
    }

    pub fn cut_network(&mut self, cgroup_id: u64) -> Result<(), KernelMapError> {
        self.quarantined
            .insert(cgroup_id, 1, 0)
            .map_err(map_err(names::MAP_QUARANTINED))
    }

    pub fn restore_network(&mut self, cgroup_id: u64) -> Result<(), KernelMapError> {
        match self.quarantined.remove(&cgroup_id) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::MAP_QUARANTINED)(e)),
        }
    }

    /// Cuts one process's network by tgid (a quarantine's containment, before its cgroup).
    pub fn cut_tgid(&mut self, tgid: u32) -> Result<(), KernelMapError> {
        self.quarantined_tgids
            .insert(tgid, 1, 0)
            .map_err(map_err(names::MAP_QUARANTINED_TGIDS))
    }

    pub fn restore_tgid(&mut self, tgid: u32) -> Result<(), KernelMapError> {
        match self.quarantined_tgids.remove(&tgid) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::MAP_QUARANTINED_TGIDS)(e)),
        }
    }
}

fn replace_trie<const N: usize>(
    trie: &mut LpmTrie<MapData, [u8; N], u32>,
    wanted: &[(Key<[u8; N]>, u32)],
    name: &'static str,
) -> Result<(), KernelMapError> {
    for (k, rule) in wanted {
        trie.insert(k, rule, 0).map_err(map_err(name))?;
    }
    let stale: Vec<Key<[u8; N]>> = trie
        .keys()
        .filter_map(Result::ok)
        .filter(|k| {
            !wanted
                .iter()
                .any(|(w, _)| w.prefix_len() == k.prefix_len() && w.data() == k.data())
        })
        .collect();
    for k in stale {
        let _ = trie.remove(&k);
    }
    Ok(())
}
