//! Fuzz package/bundle reading and verification: arbitrary bytes go through the defensive
//! zip reader and the full verification (manifest, signature, file list, hashes). It must
//! answer "unsafe", "failed verification" or "verified", never panic, and a verified
//! archive's entries must all be safe names.
#![no_main]

use edgepack::package::archive::{self, Limits};
use edgepack::package::verify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer explores the limit checks too.
    let limits = Limits {
        max_entries: 64,
        max_total_bytes: 16 * 1024 * 1024,
        max_ratio: 200.0,
    };
    if let Ok(a) = archive::read_zip(data, &limits) {
        for name in a.entries.keys() {
            assert!(
                archive::check_name(name).is_ok(),
                "unsafe name accepted: {name:?}"
            );
        }
        let _ = archive::canonical_problems(&a);
    }
    let _ = verify::verify_bytes(data, None, &limits);
});
