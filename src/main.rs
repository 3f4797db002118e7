//! The `onedoor` command: parse the command line and hand over to `cli::run`.

/// mimalloc instead of the system allocator: converting and validating allocate and free millions of small
/// JSON values, and worker threads free what the reading thread allocated (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's `mi_option_set(mi_option_t, long)` (linked in by the `mimalloc` crate).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the vendored v3 header, libmimalloc-sys 0.1.49).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

fn main() -> std::process::ExitCode {
    // Freed memory goes back to the system at once instead of 10-100 ms later: the schema compile's
    // temporary values would otherwise stay resident through a short run (82 MB instead of 61 MB peak
    // for a one-row convert), at no measurable cost in speed.
    // SAFETY: sets a process-wide integer option; no memory is touched, any value is accepted.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    onedoor::cli::run()
}
