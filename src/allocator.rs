//! The binary's global allocator: mimalloc, reached through the calls its fast paths serve.
//!
//! The `mimalloc` crate hands every request to `mi_malloc_aligned(size, align)`, whatever the alignment.
//! That call serves a block from its size class only when the class's page has a free block ready at a
//! multiple of `align`; otherwise it falls to a generic path which, unless the size is a power of two,
//! allocates `size + align - 1` bytes from a larger class and aligns inside them. A page's freed blocks are
//! made ready again by mimalloc's plain allocation path, which the aligned call's detour through a larger
//! class does not take for the class asked for, so a class whose page ran dry kept taking the detour: in
//! `onedoor validate`, 13 of every record's ~150 allocations did, at about 215 instructions each against
//! about 35 (BENCHMARKS.md, issue 13, twelfth round).
//!
//! [`MiMallocPlain`] sends the requests `malloc`'s own alignment covers to mimalloc's plain `mi_malloc`,
//! `mi_zalloc` and `mi_realloc`, by the rule the standard library's system allocator uses for `malloc`: an
//! alignment of at most 16 bytes (`max_align_t` on 64-bit targets; 8 on others) and no larger than the size.
//! mimalloc, a drop-in `malloc`, keeps that contract (its size classes above one word are whole multiples of
//! 16 bytes on 64-bit targets, and its pages start 16-byte aligned). Larger alignments go to the aligned
//! calls, with the size rounded up to a multiple of the alignment ([`Layout::pad_to_align`]) so that the
//! class's blocks all start aligned; such a block is resized by moving it. Blocks are freed by pointer with
//! `mi_free` either way.

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment `malloc` guarantees a block at least this large (`alignof(max_align_t)`), as the standard
/// library counts it for its system allocator.
const MALLOC_ALIGN: usize = if cfg!(target_pointer_width = "64") {
    16
} else {
    8
};

/// mimalloc, with its plain calls for the requests `malloc`'s alignment covers.
pub struct MiMallocPlain;

/// Whether mimalloc's plain calls give `layout` its alignment.
#[inline]
fn plain(layout: Layout) -> bool {
    layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size()
}

// SAFETY: every block comes from mimalloc, with at least the size asked for, at an alignment it guarantees
// (`malloc`'s for the plain calls, given only to layouts that alignment covers; the requested one for the
// aligned calls); `mi_free` frees a block from either kind of call, and only a block from the plain calls
// is resized in place by `mi_realloc`.
unsafe impl GlobalAlloc for MiMallocPlain {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; a null return is passed on as the allocation failure it is.
        unsafe {
            if plain(layout) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                let padded = layout.pad_to_align();
                mi::mi_malloc_aligned(padded.size(), padded.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain(layout) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                let padded = layout.pad_to_align();
                mi::mi_zalloc_aligned(padded.size(), padded.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` is a live block of this allocator (the caller's guarantee), so mimalloc's.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if plain(layout) && plain(new_layout) {
            // SAFETY: `ptr` is a live block of this allocator from the plain calls (the caller's guarantee and
            // `plain(layout)`); mimalloc keeps the contents up to the smaller size, at `malloc`'s alignment.
            return unsafe { mi::mi_realloc(ptr.cast(), new_size).cast() };
        }
        // An alignment the plain calls do not cover, before or after: a new block, the contents copied.
        // (`mi_realloc_aligned` was seen to return a block off its alignment when shrinking one; this path
        // is rare, for types aligned beyond 16 bytes or smaller than their alignment.)
        // SAFETY: `new_layout` is non-zero-sized (the caller's guarantee); both blocks are live and hold at
        // least the bytes copied; the old block is freed once, after the copy.
        unsafe {
            let moved = self.alloc(new_layout);
            if !moved.is_null() {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment comes back aligned and holding what was written, through growth and
    /// shrinking, on this thread and when freed on another.
    #[test]
    fn blocks_are_aligned_and_keep_their_contents() {
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 3, 7, 8, 13, 24, 52, 56, 100, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; each block is written within its size and freed once.
                unsafe {
                    let block = MiMallocPlain.alloc(layout);
                    assert!(!block.is_null());
                    assert_eq!(block as usize % align, 0, "size {size} align {align}");
                    std::ptr::write_bytes(block, 0xA5, size);
                    let grown = MiMallocPlain.realloc(block, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "grown {size} align {align}");
                    assert!((0..size).all(|i| *grown.add(i) == 0xA5));
                    let wide = Layout::from_size_align(size * 3, align).unwrap();
                    let shrunk = MiMallocPlain.realloc(grown, wide, size);
                    assert_eq!(shrunk as usize % align, 0, "shrunk {size} align {align}");
                    assert!((0..size).all(|i| *shrunk.add(i) == 0xA5));
                    let address = shrunk as usize;
                    std::thread::spawn(move || MiMallocPlain.dealloc(address as *mut u8, layout))
                        .join()
                        .unwrap();
                    let zeroed = MiMallocPlain.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0, "zeroed {size} align {align}");
                    assert!((0..size).all(|i| *zeroed.add(i) == 0));
                    MiMallocPlain.dealloc(zeroed, layout);
                }
            }
        }
    }

    /// Many small blocks of every word-aligned size, freed and allocated again in turns (the pattern that
    /// ran a size class's page dry for the aligned call), all aligned and distinct while alive.
    #[test]
    fn small_blocks_freed_and_reused_stay_aligned() {
        let mut live: Vec<(usize, Layout)> = Vec::new();
        for round in 0..20 {
            for size in 1..=200usize {
                let align = [1, 2, 4, 8, 16][(size + round) % 5];
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; the block is kept in `live` and freed once below.
                let block = unsafe { MiMallocPlain.alloc(layout) };
                assert!(!block.is_null() && (block as usize).is_multiple_of(align));
                live.push((block as usize, layout));
            }
            let mut addresses: Vec<usize> = live.iter().map(|(a, _)| *a).collect();
            addresses.sort_unstable();
            addresses.dedup();
            assert_eq!(
                addresses.len(),
                live.len(),
                "round {round}: a block handed out twice"
            );
            for (address, layout) in live.drain(..) {
                // SAFETY: each block was allocated above with this layout and is freed once.
                unsafe { MiMallocPlain.dealloc(address as *mut u8, layout) };
            }
        }
    }
}
