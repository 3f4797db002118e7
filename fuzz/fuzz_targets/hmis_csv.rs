#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onedoor_fuzz::hmis_csv(data));
