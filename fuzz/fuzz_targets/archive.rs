//! An archive file from arbitrary bytes: `audit check-archive` never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keeptrack::audit::archive::check(data, None);
});
