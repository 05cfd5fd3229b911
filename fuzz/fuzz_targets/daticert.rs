//! Any bytes through the daticert.xml parser (strict, then the pattern fallback): no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = trasloco_pec::daticert::parse(data);
});
