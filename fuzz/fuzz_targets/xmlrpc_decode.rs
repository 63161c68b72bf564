//! See `oneha_fuzz::xmlrpc_decode` for the property checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oneha_fuzz::xmlrpc_decode(data));
