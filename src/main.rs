//! The `onedoor` command: parse the command line and hand over to `cli::run`.

/// mimalloc instead of the system allocator: converting and validating allocate and free millions of small
/// JSON values on several threads (measured in BENCHMARKS.md). Requests go to mimalloc's plain calls where
/// the alignment allows, which keep its fast path (`onedoor::allocator`). Built without transparent huge
/// pages (`no_thp` in Cargo.toml), which keeps a short run's peak memory low with mimalloc's default purge
/// delay: returning freed memory at once instead (`purge_delay` 0, set here until issue 13's sixth round)
/// cost each multi-threaded run a TLB shootdown per purge, 0.3 s of system time in a two-thread convert of
/// 20,000 rows.
#[global_allocator]
static ALLOCATOR: onedoor::allocator::MiMallocPlain = onedoor::allocator::MiMallocPlain;

fn main() -> std::process::ExitCode {
    onedoor::cli::run()
}
