//! See `oneha_fuzz::oned_config` for the property checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oneha_fuzz::oned_config(data));
