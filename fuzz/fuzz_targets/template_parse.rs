//! See `oneha_fuzz::template_parse` for the property checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oneha_fuzz::template_parse(data));
