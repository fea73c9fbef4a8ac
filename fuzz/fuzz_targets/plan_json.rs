#![no_main]
//! A saved plan (`envc apply --plan FILE`): `Plan::from_json` on any bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| envc_fuzz::plan_json(data));
