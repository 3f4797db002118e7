//! The ids a run has seen, with a few numbers each (a line, a digest), in memory up to a size and past
//! it in a temporary file, so that a run's memory stops growing with its rows while it still knows every
//! id: a duplicate row or a collision at the millionth row is found as at the tenth.
//!
//! Ids are kept by their 128-bit hash ([`hash128`]). The first [`IN_MEMORY_IDS`] (or [`IdTable::new`]'s) ids
//! live in a hash map; the rest in an open-addressing table on disk, in pages of [`SLOTS`] slots written
//! and read with positioned writes and reads (the operating system's page cache holds the hot pages; they
//! are not the process's memory), with a byte a page and a Bloom filter in memory. New slots wait in
//! memory, up to [`PENDING_SLOTS`], and are written a page's run at a time: one write a slot cost a
//! converted OneRoster student a twentieth of its time (BENCHMARKS.md, issue 13, twenty-fourth round).
//! The file is anonymous (removed as soon as it is made) and holds only hashes, line numbers and digests:
//! nothing of a record's content.

use rustc_hash::FxHashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::FileExt;

/// How many ids a table keeps in memory before the rest go to its file (about 1.3 MB with the hash map's
/// spare room): small enough that an export of 20,000 rows already uses the file, so a run's memory is the
/// same from there on (BENCHMARKS.md, issue 13 target 3).
pub const IN_MEMORY_IDS: usize = 16_384;

/// How many new slots the file's table keeps in memory before it writes them (about 0.5 MB with the map's
/// spare room; 16,384 cut the writes further but took 9 MB more in a two-thread run of 100,000 rows).
const PENDING_SLOTS: usize = 4_096;

/// A 128-bit hash of `text` (two SipHash passes told apart by a prefix, with fixed keys: the same in every
/// run), so that two different ids sharing one is not a concern even for hundreds of millions of ids.
pub fn hash128(text: &str) -> u128 {
    let mut first = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut first);
    let mut second = std::collections::hash_map::DefaultHasher::new();
    (1u8, text).hash(&mut second);
    (u128::from(first.finish()) << 64) | u128::from(second.finish())
}

/// What is kept with an id.
pub type Values = [u64; 3];

/// Bytes of one slot: the id's hash and its values.
const SLOT: usize = 16 + 8 * 3;
/// Slots in one page of the file.
const SLOTS: usize = 4096 / SLOT;
/// Bytes of one page (the slots; the rest of 4 KiB is unused).
const PAGE: usize = SLOTS * SLOT;

/// Ids seen, in memory up to a size, then on disk.
pub struct IdTable {
    memory: FxHashMap<u128, Values>,
    in_memory: usize,
    disk: Option<DiskTable>,
    /// New slots the file's table keeps before writing them.
    pending_slots: usize,
}

impl Default for IdTable {
    /// A table that keeps its first [`IN_MEMORY_IDS`] ids in memory.
    fn default() -> Self {
        Self::new(IN_MEMORY_IDS)
    }
}

impl IdTable {
    /// A table that keeps its first `in_memory` ids in memory.
    pub fn new(in_memory: usize) -> Self {
        Self {
            memory: FxHashMap::default(),
            in_memory,
            disk: None,
            pending_slots: PENDING_SLOTS,
        }
    }

    /// The values kept with `id`, if it was seen.
    pub fn get(&self, id: &str) -> io::Result<Option<Values>> {
        self.get_hashed(hash128(id))
    }

    /// Keep `values` with `id` unless it was seen: then its values are returned and nothing changes.
    pub fn insert(&mut self, id: &str, values: Values) -> io::Result<Option<Values>> {
        self.insert_hashed(hash128(id), values)
    }

    fn get_hashed(&self, id: u128) -> io::Result<Option<Values>> {
        if let Some(values) = self.memory.get(&id) {
            return Ok(Some(*values));
        }
        match &self.disk {
            Some(disk) => disk.get(id),
            None => Ok(None),
        }
    }

    fn insert_hashed(&mut self, id: u128, values: Values) -> io::Result<Option<Values>> {
        if let Some(seen) = self.memory.get(&id) {
            return Ok(Some(*seen));
        }
        if let Some(disk) = &mut self.disk {
            return disk.insert(id, values);
        }
        if self.memory.len() < self.in_memory {
            self.memory.insert(id, values);
            return Ok(None);
        }
        (self.disk)
            .insert(DiskTable::create(64, self.pending_slots)?)
            .insert(id, values)
    }

    /// How many ids it holds.
    pub fn len(&self) -> usize {
        self.memory.len() + self.disk.as_ref().map_or(0, |d| d.len)
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An open-addressing hash table in an anonymous file: `pages` pages (a power of two) of slots; an id
/// goes in the first page from its home page on that has a free slot, and a page's slots fill in order.
/// In memory it keeps only how full each page is (a byte a page) and a Bloom filter of its ids (10 bits
/// an id): a new id (nearly every one) waits among the pending slots and is written with its page's
/// others, and nothing is read; only an id the filter may have seen (a repeat, or 1 in 100 new ones) is
/// looked for among the slots not yet written, then in the file.
struct DiskTable {
    file: File,
    pages: u64,
    len: usize,
    /// Slots used in each page (those not yet written included).
    fill: Vec<u8>,
    seen: Bloom,
    /// Slots taken and not yet written, by key: their page, their place in it and their values.
    pending: FxHashMap<u128, (u64, usize, Values)>,
    /// At this many, the pending slots are written.
    pending_slots: usize,
}

/// Grow when the table is this full (tenths).
const MAX_LOAD_TENTHS: usize = 7;

impl DiskTable {
    fn create(pages: u64, pending_slots: usize) -> io::Result<Self> {
        let file = tempfile::tempfile()?;
        file.set_len(pages * PAGE as u64)?;
        let capacity = pages as usize * SLOTS * MAX_LOAD_TENTHS / 10;
        Ok(Self {
            file,
            pages,
            len: 0,
            fill: vec![0; pages as usize],
            seen: Bloom::new(capacity),
            pending: FxHashMap::default(),
            pending_slots,
        })
    }

    fn get(&self, id: u128) -> io::Result<Option<Values>> {
        let key = stored_key(id);
        if !self.seen.may_hold(key) {
            return Ok(None);
        }
        self.find(key)
    }

    /// Keep `values` with `id` unless it is there (then its values).
    fn insert(&mut self, id: u128, values: Values) -> io::Result<Option<Values>> {
        let key = stored_key(id);
        if self.seen.may_hold(key)
            && let Some(seen) = self.find(key)?
        {
            return Ok(Some(seen));
        }
        // Written before the id is taken: an id whose insert failed is not kept, and a slot whose write
        // failed stays pending (found, and written again next time), so no id is ever lost.
        if self.pending.len() >= self.pending_slots {
            self.write_pending()?;
        }
        if (self.len + 1) * 10 > self.pages as usize * SLOTS * MAX_LOAD_TENTHS {
            self.grow()?;
        }
        let (page, index) = self.free_slot(key)?;
        self.pending.insert(key, (page, index, values));
        self.taken(page, key);
        Ok(None)
    }

    /// Write the pending slots, each page's (consecutive in it) with one write; they stop being pending
    /// once every write succeeded.
    fn write_pending(&mut self) -> io::Result<()> {
        let mut slots: Vec<(u64, usize, [u8; SLOT])> = (self.pending.iter())
            .map(|(&key, &(page, index, values))| (page, index, slot_bytes(key, values)))
            .collect();
        slots.sort_unstable_by_key(|&(page, index, _)| (page, index));
        let mut run: Vec<u8> = Vec::with_capacity(PAGE);
        for (position, (page, index, bytes)) in slots.iter().enumerate() {
            run.extend_from_slice(bytes);
            let next = slots.get(position + 1);
            if next.is_none_or(|&(next_page, next_index, _)| {
                (next_page, next_index) != (*page, index + 1)
            }) {
                let first = index + 1 - run.len() / SLOT;
                self.file.write_all_at(&run, slot_offset(*page, first))?;
                run.clear();
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// The id's values: among the slots not yet written, or read from the pages on its way up to the
    /// first page with room (where it would be).
    fn find(&self, key: u128) -> io::Result<Option<Values>> {
        if let Some(&(_, _, values)) = self.pending.get(&key) {
            return Ok(Some(values));
        }
        let mut page = [0u8; PAGE];
        for number in self.probe(key) {
            let used = usize::from(self.fill[number as usize]);
            let bytes = &mut page[..used * SLOT];
            self.file.read_exact_at(bytes, number * PAGE as u64)?;
            if let Some(slot) = bytes.chunks_exact(SLOT).find(|s| slot_key(s) == key) {
                return Ok(Some(slot_values(slot)));
            }
            if used < SLOTS {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// The page and slot a new key goes in.
    fn free_slot(&self, key: u128) -> io::Result<(u64, usize)> {
        self.probe(key)
            .find(|&number| usize::from(self.fill[number as usize]) < SLOTS)
            .map(|number| (number, usize::from(self.fill[number as usize])))
            .ok_or_else(|| io::Error::other("the on-disk id table is full"))
    }

    fn taken(&mut self, page: u64, key: u128) {
        self.fill[page as usize] += 1;
        self.seen.add(key);
        self.len += 1;
    }

    /// Twice the pages: every id moved to a new file, a run of old pages at a time, each new page's new
    /// slots written together.
    fn grow(&mut self) -> io::Result<()> {
        const RUN: u64 = 64;
        self.write_pending()?;
        let mut bigger = DiskTable::create(self.pages * 2, self.pending_slots)?;
        let mut run = vec![0u8; RUN as usize * PAGE];
        for first in (0..self.pages).step_by(RUN as usize) {
            let pages = RUN.min(self.pages - first);
            let bytes = &mut run[..pages as usize * PAGE];
            self.file.read_exact_at(bytes, first * PAGE as u64)?;
            // New slots per new page, in the order they were taken (consecutive in the page).
            let mut written: std::collections::BTreeMap<u64, (usize, Vec<u8>)> = Default::default();
            for (offset, page) in bytes.chunks_exact(PAGE).enumerate() {
                let used = usize::from(self.fill[first as usize + offset]);
                for slot in page[..used * SLOT].chunks_exact(SLOT) {
                    let key = slot_key(slot);
                    let (number, index) = bigger.free_slot(key)?;
                    let (start, pending) = written.entry(number).or_insert((index, Vec::new()));
                    debug_assert_eq!(*start + pending.len() / SLOT, index);
                    pending.extend_from_slice(slot);
                    bigger.taken(number, key);
                }
            }
            for (number, (start, pending)) in written {
                bigger
                    .file
                    .write_all_at(&pending, slot_offset(number, start))?;
            }
        }
        *self = bigger;
        Ok(())
    }

    /// The pages a stored key may be in, from its home page on (every page, at most).
    fn probe(&self, key: u128) -> impl Iterator<Item = u64> + use<> {
        let home = (key as u64) & (self.pages - 1);
        let pages = self.pages;
        (0..pages).map(move |step| (home + step) & (pages - 1))
    }
}

fn slot_offset(page: u64, index: usize) -> u64 {
    page * PAGE as u64 + (index * SLOT) as u64
}

fn slot_bytes(key: u128, values: Values) -> [u8; SLOT] {
    let mut slot = [0u8; SLOT];
    slot[..16].copy_from_slice(&key.to_le_bytes());
    for (bytes, value) in slot[16..].chunks_exact_mut(8).zip(values) {
        bytes.copy_from_slice(&value.to_le_bytes());
    }
    slot
}

/// A Bloom filter of stored keys, 10 bits a key and 7 probes (about 1 false "may hold" in 100), the
/// probes taken from the key itself (already a hash).
struct Bloom {
    bits: Vec<u64>,
}

impl Bloom {
    const PROBES: u64 = 7;

    fn new(keys: usize) -> Self {
        Self {
            bits: vec![0; (keys * 10).div_ceil(64).max(1)],
        }
    }

    fn positions(&self, key: u128) -> impl Iterator<Item = usize> + use<> {
        let (low, high) = (key as u64, (key >> 64) as u64 | 1);
        let size = self.bits.len() as u64 * 64;
        (0..Self::PROBES).map(move |i| (low.wrapping_add(i.wrapping_mul(high)) % size) as usize)
    }

    fn add(&mut self, key: u128) {
        for bit in self.positions(key) {
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn may_hold(&self, key: u128) -> bool {
        self.positions(key)
            .all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// An id whose hash is 0 is kept as 1 (one in 2^128), as in the file a slot of zeros is never read as an
/// id (only the slots a page's fill says are taken are read).
fn stored_key(id: u128) -> u128 {
    id.max(1)
}

fn slot_key(slot: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&slot[..16]);
    u128::from_le_bytes(bytes)
}

fn slot_values(slot: &[u8]) -> Values {
    let mut values = [0u64; 3];
    for (value, bytes) in values.iter_mut().zip(slot[16..].chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        *value = u64::from_le_bytes(word);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_past_the_memory_part_are_found_on_disk_after_it_grows() {
        let mut table = IdTable {
            pending_slots: 333,
            ..IdTable::new(1_000)
        };
        for n in 0..100_000u64 {
            let id = format!("ref-{n}");
            assert_eq!(table.insert(&id, [n, n * 2, 7]).unwrap(), None, "{n}");
        }
        assert_eq!(table.len(), 100_000);
        assert_eq!(table.memory.len(), 1_000);
        let disk = table.disk.as_ref().unwrap();
        assert!(disk.pages > 64, "grew: {} pages", disk.pages);
        for n in (0..100_000u64).step_by(7) {
            let id = format!("ref-{n}");
            assert_eq!(table.get(&id).unwrap(), Some([n, n * 2, 7]));
            assert_eq!(table.insert(&id, [0, 0, 0]).unwrap(), Some([n, n * 2, 7]));
        }
        assert_eq!(table.get("ref-100000").unwrap(), None);
        assert_eq!(table.len(), 100_000);
    }

    #[test]
    fn a_failed_write_loses_no_id_and_keeps_none_it_refused() {
        let mut table = IdTable {
            pending_slots: 4,
            ..IdTable::new(0)
        };
        for n in 0..4u64 {
            assert_eq!(table.insert(&format!("id-{n}"), [n, 0, 0]).unwrap(), None);
        }
        let disk = table.disk.as_mut().unwrap();
        // A file that cannot be written (opened for reading only) in place of the table's.
        let readable = tempfile::NamedTempFile::new().unwrap();
        let writable = std::mem::replace(&mut disk.file, File::open(readable.path()).unwrap());
        assert!(table.insert("id-4", [4, 0, 0]).is_err(), "the write fails");
        assert_eq!(
            table.get("id-4").unwrap(),
            None,
            "an id whose insert failed is not kept"
        );
        for n in 0..4u64 {
            assert_eq!(
                table.get(&format!("id-{n}")).unwrap(),
                Some([n, 0, 0]),
                "still pending"
            );
        }
        table.disk.as_mut().unwrap().file = writable;
        assert_eq!(table.insert("id-4", [4, 0, 0]).unwrap(), None);
        for n in 0..5u64 {
            let id = format!("id-{n}");
            assert_eq!(
                table.insert(&id, [9, 9, 9]).unwrap(),
                Some([n, 0, 0]),
                "{id}"
            );
        }
        assert!(
            table.disk.as_ref().unwrap().pending.len() < 4,
            "written since"
        );
    }

    #[test]
    fn different_ids_hash_apart_and_one_id_always_alike() {
        let ids: std::collections::HashSet<u128> =
            (0..100_000).map(|n| hash128(&format!("ref-{n}"))).collect();
        assert_eq!(ids.len(), 100_000);
        assert_eq!(hash128("ref-1"), hash128("ref-1"));
        assert_ne!(hash128(""), hash128("\0"));
    }

    proptest! {
        /// The table answers as a map of every id inserted would, whatever the split between memory and disk.
        #[test]
        fn answers_as_a_map_does(in_memory in 0usize..20, pending_slots in 1usize..40, ids in prop::collection::vec(0u128..400, 0..600)) {
            let mut table = IdTable { pending_slots, ..IdTable::new(in_memory) };
            let mut map = std::collections::HashMap::new();
            for (n, id) in ids.iter().enumerate() {
                // Small ids crowd a few home pages: probing past full pages is exercised.
                let id = id << 64;
                let values = [n as u64, 1, 2];
                let expected = map.get(&id).copied();
                prop_assert_eq!(table.insert_hashed(id, values).unwrap(), expected);
                map.entry(id).or_insert(values);
            }
            prop_assert_eq!(table.len(), map.len());
            for id in 0u128..401 {
                prop_assert_eq!(table.get_hashed(id << 64).unwrap(), map.get(&(id << 64)).copied());
            }
        }
    }
}
