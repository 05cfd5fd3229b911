//! Any bytes through the classifier, the original extractor and the signature check (with an
//! empty trust store): they must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let c = trasloco_pec::classify(data);
    let _ = c.kind.name();
    let _ = trasloco_pec::original(data);
    let _ = trasloco_pec::verify(data, &trasloco_pec::TrustStore::empty());
});
