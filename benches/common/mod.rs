//! What the benches share: the binary's allocator, and the resident-memory high-water mark of a phase
//! (Linux `/proc`).

/// The allocator the `onedoor` binary runs with (`src/main.rs`), so that a bench measures the product as
/// shipped: without it a bench ran on the system allocator, which took ~24% of the OneRoster bench's time
/// (BENCHMARKS.md, issue 13, twenty-fourth round).
#[global_allocator]
static ALLOCATOR: onedoor::allocator::MiMallocPlain = onedoor::allocator::MiMallocPlain;

/// Reset the high-water mark, so the next reading covers only what follows.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The resident-memory high-water mark since the last reset, in KB (0 where `/proc` does not say).
pub fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Run one phase: its result, its time in seconds and its resident-memory peak in KB.
pub fn measure<T>(phase: impl FnOnce() -> T) -> (T, f64, u64) {
    reset_peak();
    let started = std::time::Instant::now();
    let result = phase();
    (result, started.elapsed().as_secs_f64(), peak_kb())
}

/// Convert `input` with a shipped mapping into a sink that discards what it is given.
pub fn convert_shipped(
    mapping: &str,
    input: &std::path::Path,
    format: onedoor::pipeline::OutputFormat,
) -> onedoor::pipeline::Summary {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let request = onedoor::pipeline::request(
        &root.join("mappings"),
        mapping,
        input,
        None,
        onedoor::mapping::EngineOptions::default(),
    );
    let mut sink = onedoor::pipeline::NdjsonSink::new(std::io::sink(), format);
    onedoor::pipeline::convert(&request, &mut sink).expect("conversion runs")
}
