#![no_main]
//! A profile's text: load, validate, stack on the built-in base, compile, check.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| envc_fuzz::profile(data));
