//! verify's one-pass reading of an entry against the full parse and write-back: whatever
//! it accepts, the full check accepts, with the same facts.
#![no_main]

use keeptrack::{
    audit::scan::{Facts, facts},
    domain::audit::Entry,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(f) = facts(data) {
        let entry = Entry::from_bytes(data).expect("accepted bytes that are not an entry");
        assert_eq!(
            entry.to_canonical_bytes(),
            data,
            "accepted bytes not in canonical form"
        );
        assert_eq!(Facts::of(&entry), f, "read other facts than the entry's");
    }
});
