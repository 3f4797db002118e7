#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onedoor_fuzz::fhirpath(data));
