//! A signed checkpoint, a verifier key and a signing key, from arbitrary bytes: no panic,
//! and nothing opens under a key that did not sign it.
#![no_main]

use std::sync::LazyLock;

use keeptrack::audit::checkpoint::{Signer, Verifier};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<Verifier> = LazyLock::new(|| {
    Signer::generate("keeptrack.fuzz/audit")
        .expect("a key")
        .verifier()
});

fuzz_target!(|data: &[u8]| {
    assert!(
        KEY.open(data).is_err(),
        "opened a note this key never signed"
    );
    let text = String::from_utf8_lossy(data);
    let _ = Verifier::from_vkey(&text);
    let _ = Signer::from_skey(&text);
});
