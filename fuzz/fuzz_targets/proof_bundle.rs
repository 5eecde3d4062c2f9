//! A proof bundle from arbitrary bytes: `audit check` never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keeptrack::audit::proof::check(data, None);
});
