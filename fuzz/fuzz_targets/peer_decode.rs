//! See `oneha_fuzz::peer_decode` for the property checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oneha_fuzz::peer_decode(data));
