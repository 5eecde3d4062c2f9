//! The fast path of `audit verify`: an entry's facts read straight off its canonical bytes.
//!
//! Verify needs, for each of up to millions of entries, to know that the stored bytes are
//! the canonical form of an entry and what that entry says. Parsing with serde_json and
//! writing the entry again answers both but costs microseconds. Canonical bytes leave no
//! choice in how anything is written: keys in one order, no whitespace, one spelling of
//! every string and number. So one pass that accepts exactly those spellings, for exactly
//! the schema of `Entry`, answers both without building the entry. Whatever it is not sure
//! about it declines, and the caller runs the full check.

use crate::domain::audit::{Action, ActorKind, Category, Entry};

/// What verify needs from an entry: what it compares with the indexed columns and walks in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts<'a> {
    pub i: i64,
    pub ts: i64,
    pub log: &'a str,
    pub cat: Category,
    pub act: Action,
    pub actor_kind: ActorKind,
    pub actor_id: Option<i64>,
    pub rec_type: Option<&'a str>,
    pub rec_id: Option<i64>,
}

impl<'a> Facts<'a> {
    /// The same facts, of an entry already parsed.
    pub fn of(e: &'a Entry) -> Self {
        Self {
            i: e.i,
            ts: e.ts,
            log: &e.log,
            cat: e.cat,
            act: e.act,
            actor_kind: e.actor.kind,
            actor_id: e.actor.id,
            rec_type: e.rec.as_ref().map(|r| r.kind.as_str()),
            rec_id: e.rec.as_ref().map(|r| r.id),
        }
    }
}

/// The facts of the entry whose canonical bytes these are, or None when that is not
/// certain. `Some` promises that `Entry::from_bytes` accepts the bytes, that writing the
/// entry again gives the same bytes, and that the facts are the entry's. `None` promises
/// nothing: the bytes may be damaged, or canonical in a way this pass leaves to the full
/// check (integers beyond 2^53, non-ASCII keys, nesting deeper than `MAX_DEPTH`, an
/// escape in `log` or `rec.type`).
pub fn facts(bytes: &[u8]) -> Option<Facts<'_>> {
    // Outside strings only ASCII is accepted, so checking the whole entry's UTF-8 at
    // once checks every string's, without a call per string.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut reader = Reader {
        text,
        bytes,
        pos: 0,
    };
    let facts = reader.entry()?;
    (reader.pos == bytes.len()).then_some(facts)
}

/// The largest integer magnitude for which serde_json writes what RFC 8785 writes (see
/// `is_plain` in domain::audit); beyond it the entry is written by the canonicaliser, as
/// a double.
const EXACT: u64 = 1 << 53;

/// How deeply free-form values (diff old/new, snap) may nest here. Well inside
/// serde_json's limit of 128, so that nothing accepted here is too deep for it.
const MAX_DEPTH: u32 = 64;

struct Reader<'a> {
    text: &'a str,
    /// The same as `text`, to read byte by byte.
    bytes: &'a [u8],
    pos: usize,
}

/// A string as written between its quotes; `plain` when it holds no escape, so that the
/// text is the string itself.
#[derive(Clone, Copy)]
struct Text<'a> {
    raw: &'a str,
    plain: bool,
}

/// The parts of `Entry`, each in the order of its keys (sorted, as canonical JSON has them).
impl<'a> Reader<'a> {
    fn entry(&mut self) -> Option<Facts<'a>> {
        self.expect(b'{')?;
        let act = self.required(b"act", Self::action)?;
        let (actor_kind, actor_id) = self.required(b"actor", Self::actor)?;
        self.optional(b"auth", Self::authoriser)?;
        let cat = self.required(b"cat", Self::category)?;
        self.optional(b"comm", Self::communication)?;
        self.optional(b"diff", Self::changes)?;
        let i = self.required(b"i", Self::integer)?;
        let log = self.required(b"log", Self::word)?;
        self.optional(b"note", Self::note)?;
        self.optional(b"reason", Self::text)?;
        let rec = self.optional(b"rec", Self::record)?;
        self.optional(b"req", Self::request)?;
        self.optional(b"sec", Self::security)?;
        self.optional(b"snap", |r| r.map(MAX_DEPTH))?;
        let ts = self.required(b"ts", Self::integer)?;
        self.required(b"v", Self::version)?;
        self.expect(b'}')?;
        Some(Facts {
            i,
            ts,
            log,
            cat,
            act,
            actor_kind,
            actor_id,
            rec_type: rec.map(|(kind, _)| kind),
            rec_id: rec.map(|(_, id)| id),
        })
    }

    fn actor(&mut self) -> Option<(ActorKind, Option<i64>)> {
        self.expect(b'{')?;
        let id = self.optional(b"id", Self::integer)?;
        self.required(b"initials", Self::text)?;
        let kind = self.required(b"kind", Self::actor_kind)?;
        self.required(b"name", Self::text)?;
        self.expect(b'}')?;
        Some((kind, id))
    }

    fn authoriser(&mut self) -> Option<()> {
        self.expect(b'{')?;
        self.required(b"id", Self::integer)?;
        self.required(b"initials", Self::text)?;
        self.required(b"name", Self::text)?;
        self.required(b"permission", Self::text)?;
        self.expect(b'}')
    }

    fn communication(&mut self) -> Option<()> {
        self.expect(b'{')?;
        self.required(b"channel", Self::text)?;
        self.required(b"subject", Self::text)?;
        self.optional(b"via", Self::text)?;
        self.expect(b'}')
    }

    /// At least one change: an empty list is not written at all.
    fn changes(&mut self) -> Option<()> {
        self.expect(b'[')?;
        loop {
            self.change()?;
            if !self.eat(b',') {
                return self.expect(b']');
            }
        }
    }

    fn change(&mut self) -> Option<()> {
        self.expect(b'{')?;
        self.required(b"f", Self::text)?;
        self.required(b"new", |r| r.value(MAX_DEPTH))?;
        self.required(b"old", |r| r.value(MAX_DEPTH))?;
        self.expect(b'}')
    }

    fn note(&mut self) -> Option<()> {
        self.expect(b'{')?;
        self.required(b"rev", Self::integer)?;
        self.required(b"sha256", Self::text)?;
        self.expect(b'}')
    }

    fn record(&mut self) -> Option<(&'a str, i64)> {
        self.expect(b'{')?;
        let id = self.required(b"id", Self::integer)?;
        self.required(b"label", Self::text)?;
        let kind = self.required(b"type", Self::word)?;
        self.expect(b'}')?;
        Some((kind, id))
    }

    fn request(&mut self) -> Option<()> {
        self.expect(b'{')?;
        self.optional(b"id", Self::text)?;
        self.optional(b"ip", Self::text)?;
        self.optional(b"ua", Self::text)?;
        self.expect(b'}')
    }

    fn security(&mut self) -> Option<()> {
        self.expect(b'{')?;
        self.optional(b"action", Self::text)?;
        self.optional(b"outcome", Self::text)?;
        self.optional(b"permission", Self::text)?;
        self.optional(b"token", Self::integer)?;
        self.optional(b"username", Self::text)?;
        self.expect(b'}')
    }

    fn action(&mut self) -> Option<Action> {
        Action::parse(self.word()?)
    }

    fn category(&mut self) -> Option<Category> {
        Category::parse(self.word()?)
    }

    /// A kind added to `ActorKind` but not here is declined, which is safe.
    fn actor_kind(&mut self) -> Option<ActorKind> {
        let word = self.word()?;
        [
            ActorKind::User,
            ActorKind::System,
            ActorKind::Automation,
            ActorKind::Anonymous,
        ]
        .into_iter()
        .find(|k| k.as_str() == word)
    }

    fn version(&mut self) -> Option<u32> {
        u32::try_from(self.integer()?).ok()
    }
}

/// Objects, in the canonical order of their keys.
impl Reader<'_> {
    /// Steps over `"name":` if that is the next member of the object being read. The first
    /// member follows the `{` directly, every other one a `,`; no value ends in `{`, so
    /// the byte before tells which. A key that is unknown, repeated or out of order is
    /// never stepped over, so the object's `}` is not found where it must be. Inlined, so
    /// that each call site compares with its own constant name (about a tenth of the time).
    #[inline]
    fn member(&mut self, name: &[u8]) -> bool {
        let first = self.pos.checked_sub(1).and_then(|p| self.bytes.get(p)) == Some(&b'{');
        let at = if first { self.pos } else { self.pos + 1 };
        let found = first || self.peek() == Some(b',');
        let Some(key) = self.bytes.get(at..at + name.len() + 3) else {
            return false;
        };
        // Byte by byte: keys are short, and a call to memcmp costs more than they do.
        let found = found
            && key.first() == Some(&b'"')
            && key.iter().skip(1).zip(name).all(|(a, b)| a == b)
            && key.ends_with(b"\":");
        if found {
            self.pos = at + key.len();
        }
        found
    }

    #[inline]
    fn required<T>(&mut self, name: &[u8], read: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        if self.member(name) { read(self) } else { None }
    }

    /// An absent part is left out of canonical bytes, never written as `null`, so a
    /// `null` here fails like any other value of the wrong type.
    #[inline]
    fn optional<T>(
        &mut self,
        name: &[u8],
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<Option<T>> {
        if self.member(name) {
            read(self).map(Some)
        } else {
            Some(None)
        }
    }
}

/// Free-form JSON: diff values and snapshots.
impl Reader<'_> {
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.text(),
            b'{' => self.map(depth),
            b'[' => self.array(depth),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.integer().map(drop),
        }
    }

    fn array(&mut self, depth: u32) -> Option<()> {
        let depth = depth.checked_sub(1)?;
        self.expect(b'[')?;
        if self.eat(b']') {
            return Some(());
        }
        loop {
            self.value(depth)?;
            if !self.eat(b',') {
                return self.expect(b']');
            }
        }
    }

    /// Keys must be ASCII, whose UTF-16 order (RFC 8785's) is byte order; others are
    /// left to the canonicaliser by `is_plain`, and so to the full check.
    fn map(&mut self, depth: u32) -> Option<()> {
        let depth = depth.checked_sub(1)?;
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(());
        }
        let mut last: Option<Text<'_>> = None;
        loop {
            let key = self.string()?;
            if !key.raw.is_ascii() || last.is_some_and(|last| !ascending(last, key)) {
                return None;
            }
            last = Some(key);
            self.expect(b':')?;
            self.value(depth)?;
            if !self.eat(b',') {
                return self.expect(b'}');
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if !self.bytes.get(self.pos..)?.starts_with(word) {
            return None;
        }
        self.pos += word.len();
        Some(())
    }
}

/// Whether key `a` sorts strictly before key `b` by what they say, not how it is written:
/// `"\n"` (0x0a) comes before `"!"` (0x21) though its backslash does not.
fn ascending(a: Text<'_>, b: Text<'_>) -> bool {
    if a.plain && b.plain {
        a.raw < b.raw
    } else {
        unescaped(a.raw).lt(unescaped(b.raw))
    }
}

/// The bytes an ASCII string with canonical escapes stands for.
fn unescaped(raw: &str) -> impl Iterator<Item = u8> + '_ {
    let mut bytes = raw.bytes();
    std::iter::from_fn(move || {
        let b = bytes.next()?;
        if b != b'\\' {
            return Some(b);
        }
        Some(match bytes.next()? {
            b'b' => 0x08,
            b't' => 0x09,
            b'n' => 0x0a,
            b'f' => 0x0c,
            b'r' => 0x0d,
            // Only \u00XX is canonical: skip the zeros.
            b'u' => {
                bytes.nth(1)?;
                let high = hex(bytes.next()?)?;
                (high << 4) | hex(bytes.next()?)?
            }
            quote_or_backslash => quote_or_backslash,
        })
    })
}

/// How many bytes at the start of `rest` stand for themselves in a string: neither `"`,
/// `\` nor below 0x20. Strings are most of an entry's bytes, so they are looked at eight
/// at a time: in each 64-bit word, a byte's top bit is set in `hits` if it is one of
/// those. Only those bytes borrow in the subtractions, so no byte before the first of
/// them is marked, and the lowest mark is the first of them.
fn unescaped_run(rest: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const TOPS: u64 = u64::from_le_bytes([0x80; 8]);
    let (words, tail) = rest.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*word);
        let below_space = x.wrapping_sub(ONES * 0x20);
        let quote = (x ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
        let backslash = (x ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
        let hits = (below_space | quote | backslash) & !x & TOPS;
        if hits != 0 {
            return n * 8 + hits.trailing_zeros() as usize / 8;
        }
    }
    let special = |b: &u8| *b == b'"' || *b == b'\\' || *b < 0x20;
    words.len() * 8 + tail.iter().position(special).unwrap_or(tail.len())
}

/// A lower-case hex digit's value; upper case is not canonical.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Strings and numbers, in their one canonical spelling.
impl<'a> Reader<'a> {
    /// A string whose text must be borrowed as it is: an escape makes it decline.
    fn word(&mut self) -> Option<&'a str> {
        let text = self.string()?;
        text.plain.then_some(text.raw)
    }

    /// A string whose content does not matter here.
    fn text(&mut self) -> Option<()> {
        self.expect(b'"')?;
        self.string_end().map(drop)
    }

    /// Escapes are exactly serde_json's (and RFC 8785's): `\"`, `\\`, the five short
    /// control escapes, `\u00xx` in lower case for the other bytes below 0x20, nothing
    /// else. Each has one spelling, so whatever else parses is written back differently.
    fn string(&mut self) -> Option<Text<'a>> {
        self.expect(b'"')?;
        let start = self.pos;
        let plain = self.string_end()?;
        // Both ends are next to a quote, so on character boundaries.
        let raw = self.text.get(start..self.pos - 1)?;
        Some(Text { raw, plain })
    }

    /// Steps past the closing quote; whether the string had no escape.
    fn string_end(&mut self) -> Option<bool> {
        self.pos += unescaped_run(self.bytes.get(self.pos..)?);
        match self.next()? {
            b'"' => Some(true),
            b'\\' => self.escaped_end(),
            _ => None,
        }
    }

    /// The rest of a string after its first backslash: rare, so kept out of the way.
    #[cold]
    fn escaped_end(&mut self) -> Option<bool> {
        loop {
            self.escape()?;
            self.pos += unescaped_run(self.bytes.get(self.pos..)?);
            match self.next()? {
                b'"' => return Some(false),
                b'\\' => {}
                _ => return None,
            }
        }
    }

    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => {
                let digits = self.bytes.get(self.pos..self.pos.checked_add(4)?)?;
                self.pos += 4;
                let [b'0', b'0', high @ (b'0' | b'1'), low] = *digits else {
                    return None;
                };
                let code = ((high - b'0') << 4) | hex(low)?;
                // These five have a short escape, which is the one written.
                (!matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)).then_some(())
            }
            _ => None,
        }
    }

    /// An integer of at most 2^53 in size, without sign on zero, leading zeros, fraction
    /// or exponent: `-0`, `1.0` and `1e2` parse as floats, which are never written so.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.eat(b'-');
        let mut n = u64::from(self.digit()?);
        if n == 0 {
            if negative || self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return None;
            }
        } else {
            while let Some(d) = self.digit() {
                n = n * 10 + u64::from(d);
                if n > EXACT {
                    return None;
                }
            }
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let n = i64::try_from(n).ok()?;
        Some(if negative { -n } else { n })
    }

    fn digit(&mut self) -> Option<u8> {
        let d = self.peek().filter(u8::is_ascii_digit)? - b'0';
        self.pos += 1;
        Some(d)
    }
}

/// Single bytes.
impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use proptest::prelude::*;
    use proptest::sample::Index;
    use proptest::test_runner::{Config, TestRunner};
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::{
        audit::{
            Actor, Authoriser, CommunicationRef, Entry, NoteRef, RecordRef, Request, SecurityRef,
        },
        diff::Change,
        record::Fields,
    };

    const KINDS: [ActorKind; 4] = [
        ActorKind::User,
        ActorKind::System,
        ActorKind::Automation,
        ActorKind::Anonymous,
    ];

    fn expected(e: &Entry) -> Facts<'_> {
        Facts::of(e)
    }

    /// What verify's full check makes of the bytes: the entry, if they are its canonical form.
    fn slow(bytes: &[u8]) -> Option<Entry> {
        Entry::from_bytes(bytes)
            .ok()
            .filter(|e| e.to_canonical_bytes() == bytes)
    }

    fn fields(v: Value) -> Fields {
        v.as_object().cloned().unwrap_or_default()
    }

    fn minimal() -> Entry {
        Entry {
            v: 1,
            log: "keeptrack.test/audit".into(),
            i: 0,
            ts: 1_539_874_804_000_000,
            cat: Category::System,
            act: Action::Install,
            actor: Actor {
                kind: ActorKind::System,
                id: None,
                initials: "SPSA".into(),
                name: "System".into(),
            },
            auth: None,
            rec: None,
            diff: vec![],
            snap: None,
            note: None,
            comm: None,
            sec: None,
            reason: None,
            req: None,
        }
    }

    fn full() -> Entry {
        Entry {
            v: 1,
            log: "keeptrack.test/audit".into(),
            i: 7,
            ts: 1_539_874_804_000_000,
            cat: Category::Clients,
            act: Action::Update,
            actor: Actor {
                kind: ActorKind::User,
                id: Some(3),
                initials: "MKH".into(),
                name: "Mary K Hill".into(),
            },
            auth: Some(Authoriser {
                id: 2,
                initials: "AB".into(),
                name: "Al Boss".into(),
                permission: "clients.edit".into(),
            }),
            rec: Some(RecordRef {
                kind: "client".into(),
                id: 12,
                label: "Client #1042 Jane Smith".into(),
            }),
            diff: vec![
                Change {
                    field: "email".into(),
                    old: json!("old@x.com"),
                    new: json!("new@x.com"),
                },
                Change {
                    field: "lines".into(),
                    old: json!([{"qty": 1, "sku": "A"}]),
                    new: json!({"a": [1, -2, true, false, null], "b": {"c": "d"}}),
                },
            ],
            snap: Some(fields(
                json!({"city": "Akron", "n": -5, "tags": ["x", "y"], "z": null}),
            )),
            note: Some(NoteRef {
                rev: 4,
                sha256: "ab12".into(),
            }),
            comm: Some(CommunicationRef {
                channel: "email".into(),
                subject: "Reminder".into(),
                via: Some("smtp".into()),
            }),
            sec: Some(SecurityRef {
                username: Some("mary".into()),
                permission: Some("p".into()),
                action: Some("a".into()),
                outcome: Some("ok".into()),
                token: Some(9),
            }),
            reason: Some("tab\there \"q\" back\\slash \u{1f} \u{7f} é ✓ 😀".into()),
            req: Some(Request {
                id: Some("r1".into()),
                ip: Some("127.0.0.1".into()),
                ua: Some("curl/8".into()),
            }),
        }
    }

    fn text_of(e: &Entry) -> String {
        String::from_utf8(e.to_canonical_bytes()).unwrap()
    }

    #[track_caller]
    fn assert_read(e: &Entry) {
        let bytes = e.to_canonical_bytes();
        assert_eq!(
            facts(&bytes),
            Some(expected(e)),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }

    #[test]
    fn reads_the_facts_of_the_full_and_the_minimal_entry() {
        assert_read(&full());
        assert_read(&minimal());
    }

    #[test]
    fn reads_every_action_category_and_actor_kind() {
        for (n, act) in Action::ALL.into_iter().enumerate() {
            for cat in Category::ALL {
                let mut e = full();
                e.act = act;
                e.cat = cat;
                e.actor.kind = KINDS[n % KINDS.len()];
                assert_read(&e);
            }
        }
        for kind in KINDS {
            for id in [None, Some(0), Some(-4), Some(1 << 53)] {
                let mut e = minimal();
                e.actor = Actor {
                    kind,
                    id,
                    initials: String::new(),
                    name: "x".into(),
                };
                assert_read(&e);
            }
        }
    }

    #[test]
    fn reads_every_optional_part_alone_and_every_subset_of_their_fields() {
        let f = full();
        let alone: [fn(&mut Entry, &Entry); 9] = [
            |e, f| e.auth.clone_from(&f.auth),
            |e, f| e.rec.clone_from(&f.rec),
            |e, f| e.diff.clone_from(&f.diff),
            |e, f| e.snap.clone_from(&f.snap),
            |e, f| e.note.clone_from(&f.note),
            |e, f| e.comm.clone_from(&f.comm),
            |e, f| e.sec.clone_from(&f.sec),
            |e, f| e.reason.clone_from(&f.reason),
            |e, f| e.req.clone_from(&f.req),
        ];
        for add in alone {
            let mut e = minimal();
            add(&mut e, &f);
            assert_read(&e);
        }
        let pick = |bits: u32, bit: u32, s: &str| (bits & (1 << bit) != 0).then(|| s.to_owned());
        for bits in 0..8 {
            let mut e = minimal();
            e.req = Some(Request {
                id: pick(bits, 0, "r"),
                ip: pick(bits, 1, "::1"),
                ua: pick(bits, 2, "ua"),
            });
            assert_read(&e);
        }
        for bits in 0..32 {
            let mut e = minimal();
            e.sec = Some(SecurityRef {
                username: pick(bits, 0, "u"),
                permission: pick(bits, 1, "p"),
                action: pick(bits, 2, "a"),
                outcome: pick(bits, 3, "o"),
                token: (bits & 16 != 0).then_some(-(1 << 53)),
            });
            assert_read(&e);
        }
        let mut e = full();
        e.comm = Some(CommunicationRef {
            channel: String::new(),
            subject: "s".into(),
            via: None,
        });
        e.snap = Some(Fields::new());
        assert_read(&e);
    }

    #[test]
    fn reads_strings_holding_anything_and_keys_sorted_by_what_they_say() {
        let odd = "\"\\/\u{0}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}é\u{2028}𝄞";
        let mut e = full();
        e.actor.name = odd.into();
        e.actor.initials = odd.into();
        e.rec.as_mut().unwrap().label = odd.into();
        e.reason = Some(odd.into());
        e.diff[0].field = odd.into();
        e.diff[0].new = json!({"\n": odd, "!": [odd], "\"": 1, "\\": 2, "\u{1f}": 3, "": 4});
        e.snap = Some(fields(
            json!({"\u{0}": 0, "\u{8}": 8, "\u{b}": 11, " ": 32, "~": 126}),
        ));
        assert_read(&e);
    }

    #[test]
    fn reads_integers_up_to_2_to_the_53_and_nesting_up_to_the_limit() {
        let mut e = full();
        e.i = 1 << 53;
        e.ts = -(1 << 53);
        e.v = u32::MAX;
        e.diff[0].old = json!([9_007_199_254_740_992_i64, -9_007_199_254_740_992_i64, 0]);
        let mut deep = json!(0);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        e.diff[0].new = deep;
        assert_read(&e);
    }

    /// Eight bytes at a time finds what one at a time finds: any byte, at any position
    /// in or across words, after plain bytes with or without their top bit, before
    /// special ones or not.
    #[test]
    fn unescaped_run_stops_at_the_first_quote_backslash_or_control_byte() {
        let special = |b: &u8| *b == b'"' || *b == b'\\' || *b < 0x20;
        for len in 1..20 {
            for at in 0..len {
                for b in 0..=u8::MAX {
                    for before in [b'a', b' ', b'!', b'#', b']', 0x7f, 0x80, 0xa0, 0xff] {
                        for after in [b'a', b'"', b'\\', 0x00, 0x1f, 0xff] {
                            let mut bytes = vec![before; at];
                            bytes.push(b);
                            bytes.resize(len, after);
                            let want = bytes.iter().position(special).unwrap_or(len);
                            assert_eq!(unescaped_run(&bytes), want, "{bytes:?}");
                        }
                    }
                }
            }
        }
    }

    /// Whether the bytes are declined here and rejected by the full check.
    #[track_caller]
    fn assert_rejected(bytes: &[u8]) {
        let shown = String::from_utf8_lossy(bytes);
        assert_eq!(facts(bytes), None, "accepted {shown}");
        assert!(slow(bytes).is_none(), "the full check accepts {shown}");
    }

    /// `e`'s canonical text with `from` replaced by `to`, once.
    #[track_caller]
    fn edit(e: &Entry, from: &str, to: &str) -> Vec<u8> {
        let text = text_of(e);
        assert!(text.contains(from), "{from} is not in {text}");
        text.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn declines_what_is_not_canonical() {
        let (f, m) = (full(), minimal());
        let edits: &[(&Entry, &str, &str)] = &[
            // whitespace
            (&f, r#"{"act""#, r#"{ "act""#),
            (&f, r#""i":7"#, r#""i": 7"#),
            (&f, r#""i":7"#, r#""i" :7"#),
            (&f, r#","i":7"#, ",\n\"i\":7"),
            (&f, r#""v":1}"#, "\"v\":1\t}"),
            (&f, r#"[1,-2"#, "[1,\r-2"),
            // keys out of order
            (
                &f,
                r#""i":7,"log":"keeptrack.test/audit""#,
                r#""log":"keeptrack.test/audit","i":7"#,
            ),
            (
                &f,
                r#""initials":"MKH","kind":"user""#,
                r#""kind":"user","initials":"MKH""#,
            ),
            (
                &f,
                r#""new":"new@x.com","old":"old@x.com""#,
                r#""old":"old@x.com","new":"new@x.com""#,
            ),
            (&f, r#"{"qty":1,"sku":"A"}"#, r#"{"sku":"A","qty":1}"#),
            (&f, r#""city":"Akron","n":-5"#, r#""n":-5,"city":"Akron""#),
            // duplicate keys
            (&f, r#""i":7,"#, r#""i":7,"i":7,"#),
            (&f, r#""id":3,"#, r#""id":3,"id":3,"#),
            (
                &f,
                r#""city":"Akron","#,
                r#""city":"Akron","city":"Akron","#,
            ),
            (&f, r#"{"qty":1,"#, r#"{"qty":1,"qty":1,"#),
            (&f, r#""z":null}"#, r#""z":null,"z":null}"#),
            // absent parts written as null or empty
            (&m, r#","cat":"#, r#","auth":null,"cat":"#),
            (&m, r#","i":"#, r#","comm":null,"i":"#),
            (&m, r#","i":"#, r#","diff":[],"i":"#),
            (&m, r#","i":"#, r#","diff":null,"i":"#),
            (&m, r#","ts":"#, r#","note":null,"ts":"#),
            (&m, r#","ts":"#, r#","reason":null,"ts":"#),
            (&m, r#","ts":"#, r#","rec":null,"ts":"#),
            (&m, r#","ts":"#, r#","req":null,"ts":"#),
            (&m, r#","ts":"#, r#","sec":null,"ts":"#),
            (&m, r#","ts":"#, r#","snap":null,"ts":"#),
            (&m, r#"{"initials""#, r#"{"id":null,"initials""#),
            (&f, r#""via":"smtp""#, r#""via":null"#),
            (&f, r#""token":9"#, r#""token":null"#),
            (&f, r#""ua":"curl/8""#, r#""ua":null"#),
            // unknown keys
            (&f, r#","v":1}"#, r#","u":1,"v":1}"#),
            (&f, r#","v":1}"#, r#","v":1,"w":1}"#),
            (&f, r#""initials":"MKH","#, r#""initials":"MKH","k":"#),
            (&f, r#""initials":"MKH","#, r#""initials":"MKH","k":1,"#),
            (&f, r#"{"f":"email","#, r#"{"f":"email","g":1,"#),
            (&f, r#"{"id":12,"#, r#"{"id":12,"kind":"client","#),
            (&f, r#""ua":"curl/8""#, r#""ua":"curl/8","x":"y""#),
            (&f, r#""username":"mary""#, r#""username":"mary","z":1"#),
            // unknown names
            (&f, r#""act":"update""#, r#""act":"updated""#),
            (&f, r#""act":"update""#, r#""act":"Update""#),
            (&f, r#""act":"update""#, r#""act":"upd\u0061te""#),
            (&f, r#""act":"update""#, r#""act":{"update":null}"#),
            (&f, r#""cat":"clients""#, r#""cat":"client""#),
            (&f, r#""kind":"user""#, r#""kind":"robot""#),
            (&f, r#""kind":"user""#, r#""kind":0"#),
            // missing required keys
            (&f, r#""i":7,"#, ""),
            (&f, r#","ts":1539874804000000"#, ""),
            (&f, r#","v":1"#, ""),
            (&f, r#""initials":"MKH","#, ""),
            (&f, r#","sha256":"ab12""#, ""),
            (&f, r#","permission":"clients.edit""#, ""),
            (&f, r#","label":"Client #1042 Jane Smith""#, ""),
            (&f, r#","old":"old@x.com""#, ""),
            (&f, r#","subject":"Reminder""#, ""),
            (
                &f,
                r#""auth":{"id":2,"initials":"AB","name":"Al Boss","permission":"clients.edit"}"#,
                r#""auth":{}"#,
            ),
            // escapes other than the canonical ones
            (&f, "test/audit", r"test\/audit"),
            (&f, "Mary K", r"M\u0061ry K"),
            (&f, r"\u001f", r"\u001F"),
            (&f, r"\t", r"\u0009"),
            (&f, r#"\""#, r"\u0022"),
            (&f, r"\\", r"\u005c"),
            (&f, "é", r"\u00e9"),
            (&f, "😀", r"\ud83d\ude00"),
            (&f, "tab", r"\u0074ab"),
            (&f, "tab", r"\x74ab"),
            (&f, "tab", r"\Tab"),
            (&f, r#""act""#, r#""a\u0063t""#),
            (&f, r#""city""#, r#""c\u0069ty""#),
            // raw control characters
            (&f, "Mary K", "Mary\u{1}K"),
            (&f, "Mary K", "Mary\tK"),
            // numbers
            (&f, r#""i":7"#, r#""i":07"#),
            (&f, r#""rev":4"#, r#""rev":04"#),
            (&f, r#""qty":1"#, r#""qty":01"#),
            (&f, r#""n":-5"#, r#""n":-05"#),
            (&f, r#""i":7"#, r#""i":-0"#),
            (&f, r#""qty":1"#, r#""qty":-0"#),
            (&f, r#""i":7"#, r#""i":+7"#),
            (&f, r#""i":7"#, r#""i":7.0"#),
            (&f, r#""v":1"#, r#""v":1.0"#),
            (&f, r#""qty":1"#, r#""qty":1.0"#),
            (&f, r#""i":7"#, r#""i":7e0"#),
            (&f, r#""qty":1"#, r#""qty":1e0"#),
            (&f, r#""qty":1"#, r#""qty":1E2"#),
            (&f, r#""i":7"#, r#""i":"7""#),
            (&f, r#""i":7"#, r#""i":9223372036854775808"#),
            (&f, r#""i":7"#, r#""i":99999999999999999999"#),
            (
                &f,
                r#""ts":1539874804000000"#,
                r#""ts":-9223372036854775809"#,
            ),
            (&f, r#""qty":1"#, r#""qty":9007199254740993"#),
            (&f, r#""qty":1"#, r#""qty":18446744073709551616"#),
            (&f, r#""v":1"#, r#""v":4294967296"#),
            (&f, r#""v":1"#, r#""v":-1"#),
            // other types
            (
                &f,
                r#""note":{"rev":4,"sha256":"ab12"}"#,
                r#""note":[4,"ab12"]"#,
            ),
            (&f, r#""snap":{"#, r#""snap":[{"#),
            (&f, r#""z":null"#, r#""z":nul"#),
            (&f, r#""z":null"#, r#""z":NULL"#),
            (&f, "true", "True"),
            (&f, "false", "fals"),
            (&f, r#"[1,-2"#, r#"[1,,-2"#),
            (&f, r#"null]"#, r#"null,]"#),
            (&f, r#""z":null}"#, r#""z":null,}"#),
            (&f, r#"{"c":"d"}"#, r#"{"c"}"#),
            (&f, r#"{"c":"d"}"#, r#"{"c":"d""#),
        ];
        for (e, from, to) in edits {
            assert_rejected(&edit(e, from, to));
        }
    }

    #[test]
    fn declines_every_truncation_and_anything_around_the_entry() {
        let bytes = full().to_canonical_bytes();
        for len in 0..bytes.len() {
            assert_rejected(&bytes[..len]);
        }
        for extra in [b" ", b"\n", b"x", b"}", b"0", b"\0"] {
            assert_rejected(&[&bytes[..], extra].concat());
            assert_rejected(&[extra, &bytes[..]].concat());
        }
        for other in ["", "null", "{}", "[]", "\"\"", "0", "{\"act\":\"update\"}"] {
            assert_rejected(other.as_bytes());
        }
    }

    #[test]
    fn declines_invalid_utf8_in_strings() {
        let text = text_of(&full());
        for (from, to) in [
            ("Mary", &b"\xffary"[..]),
            ("Mary", b"\xc3ary"),
            ("Mary", b"M\x80ry"),
            ("test/audit", b"test\xc0\xafaudit"),
            ("Akron", b"\xed\xa0\x80kron"),
            ("city", b"cit\xf4\x90\x80\x80"),
            ("é", b"\xc3"),
            ("😀", b"\xf0\x9f\x98"),
        ] {
            let at = text.find(from).unwrap();
            let bytes = [
                &text.as_bytes()[..at],
                to,
                &text.as_bytes()[at + from.len()..],
            ]
            .concat();
            assert_rejected(&bytes);
        }
    }

    #[test]
    fn declines_keys_whose_bytes_but_not_characters_ascend() {
        let mut e = minimal();
        e.snap = Some(fields(json!({"\n": 1, "!": 2})));
        assert_read(&e);
        assert_rejected(&edit(&e, r#"{"\n":1,"!":2}"#, r#"{"!":2,"\n":1}"#));
    }

    #[test]
    fn declines_nesting_too_deep_for_serde_json() {
        let mut e = full();
        e.diff[0].old = json!(null);
        let open = "[".repeat(200);
        let close = "]".repeat(200);
        assert_rejected(&edit(
            &e,
            r#""old":null"#,
            &format!(r#""old":{open}{close}"#),
        ));
    }

    /// Canonical bytes this pass leaves to the full check, which accepts them: what the
    /// ledger writes only for values beyond `is_plain`, or for a log or record type
    /// that needs an escape.
    #[test]
    fn declines_canonical_bytes_it_cannot_vouch_for() {
        let mut odd = minimal();
        odd.log = "a \"b\"".into();
        odd.rec = Some(RecordRef {
            kind: "cli\nent".into(),
            id: 1,
            label: String::new(),
        });
        let mut beyond = minimal();
        beyond.ts = (1 << 53) + 2;
        let mut deep = full();
        deep.diff[0].new = json!(0);
        for _ in 0..=MAX_DEPTH {
            deep.diff[0].new = json!([deep.diff[0].new]);
        }
        let mut wide = full();
        wide.diff[0].old = json!(-(1_i64 << 60));
        let mut float = full();
        float.diff[0].old = json!(1.5);
        let mut foreign = full();
        foreign.snap = Some(fields(json!({"é": 1, "z": 2})));
        let mut log_only = minimal();
        log_only.log = "tab\there".into();
        for e in [odd, beyond, deep, wide, float, foreign, log_only] {
            let bytes = e.to_canonical_bytes();
            assert!(slow(&bytes).is_some());
            assert_eq!(facts(&bytes), None, "{}", String::from_utf8_lossy(&bytes));
        }
    }

    /// Characters beyond ASCII, and ASCII ones escaping makes special, to mix into strings.
    const ODD: [char; 8] = ['"', '\\', '/', 'é', '✓', '😀', '\u{2028}', '\u{ffff}'];

    /// Strings made of bytes mapped to characters: a regex or a strategy per character
    /// would take most of the tests' time.
    fn string_of(most: usize, char_of: fn(u8) -> char) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<u8>(), 0..=most)
            .prop_map(move |bytes| bytes.into_iter().map(char_of).collect())
    }

    /// Any characters, weighted to those written with an escape.
    fn text() -> impl Strategy<Value = String> {
        let odd = |b: u8| match char::from(b) {
            c if c.is_ascii() => c,
            _ => ODD[usize::from(b) % ODD.len()],
        };
        prop_oneof![
            4 => string_of(10, odd),
            1 => proptest::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
        ]
    }

    /// Mostly strings written without escapes, so that `log` and `rec.type` can be read.
    fn word() -> impl Strategy<Value = String> {
        let plain = |b: u8| match char::from(b' ' + b % 95) {
            '"' | '\\' => 'é',
            c => c,
        };
        prop_oneof![4 => string_of(20, plain), 1 => text()]
    }

    /// ASCII keys of free-form objects, control characters and quotes included.
    fn key() -> impl Strategy<Value = String> {
        string_of(6, |b| char::from(b & 0x7f))
    }

    fn int() -> impl Strategy<Value = i64> {
        const EXACT: i64 = 1 << 53;
        prop_oneof![-EXACT..=EXACT, Just(EXACT), Just(-EXACT), -1000..1000_i64]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            int().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                map(inner).prop_map(Value::Object),
            ]
        })
    }

    fn map(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Fields> {
        proptest::collection::btree_map(key(), values, 0..4).prop_map(|m| m.into_iter().collect())
    }

    fn actor() -> impl Strategy<Value = Actor> {
        (
            proptest::sample::select(KINDS.to_vec()),
            proptest::option::of(int()),
            text(),
            text(),
        )
            .prop_map(|(kind, id, initials, name)| Actor {
                kind,
                id,
                initials,
                name,
            })
    }

    fn parts() -> impl Strategy<Value = (Option<Authoriser>, Option<RecordRef>, Vec<Change>)> {
        use proptest::option::of;
        (
            of(
                (int(), text(), text(), text()).prop_map(|(id, initials, name, permission)| {
                    Authoriser {
                        id,
                        initials,
                        name,
                        permission,
                    }
                }),
            ),
            of((word(), int(), text()).prop_map(|(kind, id, label)| RecordRef { kind, id, label })),
            proptest::collection::vec(
                (text(), json_value(), json_value()).prop_map(|(field, old, new)| Change {
                    field,
                    old,
                    new,
                }),
                0..3,
            ),
        )
    }

    #[allow(clippy::type_complexity)]
    fn more_parts() -> impl Strategy<
        Value = (
            Option<Fields>,
            Option<NoteRef>,
            Option<CommunicationRef>,
            Option<SecurityRef>,
            Option<String>,
            Option<Request>,
        ),
    > {
        use proptest::option::of;
        (
            of(map(json_value())),
            of((int(), text()).prop_map(|(rev, sha256)| NoteRef { rev, sha256 })),
            of(
                (text(), text(), of(text())).prop_map(|(channel, subject, via)| CommunicationRef {
                    channel,
                    subject,
                    via,
                }),
            ),
            of(
                (of(text()), of(text()), of(text()), of(text()), of(int())).prop_map(
                    |(username, permission, action, outcome, token)| SecurityRef {
                        username,
                        permission,
                        action,
                        outcome,
                        token,
                    },
                ),
            ),
            of(text()),
            of(
                (of(text()), of(text()), of(text())).prop_map(|(id, ip, ua)| Request {
                    id,
                    ip,
                    ua,
                }),
            ),
        )
    }

    /// Any entry the ledger writes with plain numbers and keys (shared with
    /// `domain::audit`'s test of the writer's bytes).
    pub(crate) fn entry() -> impl Strategy<Value = Entry> {
        let head = (
            any::<u32>(),
            word(),
            int(),
            int(),
            proptest::sample::select(Category::ALL.to_vec()),
            proptest::sample::select(Action::ALL.to_vec()),
            actor(),
        );
        (head, parts(), more_parts()).prop_map(
            |(
                (v, log, i, ts, cat, act, actor),
                (auth, rec, diff),
                (snap, note, comm, sec, reason, req),
            )| {
                Entry {
                    v,
                    log,
                    i,
                    ts,
                    cat,
                    act,
                    actor,
                    auth,
                    rec,
                    diff,
                    snap,
                    note,
                    comm,
                    sec,
                    reason,
                    req,
                }
            },
        )
    }

    /// Whether a string is written with an escape, which keeps `log` and `rec.type` from
    /// being borrowed.
    fn escaped(s: &str) -> bool {
        s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
    }

    proptest! {
        #![proptest_config(Config::with_cases(20_000))]
        /// Every plain entry the ledger can write is read, with its facts.
        #[test]
        fn reads_every_plain_entry(e in entry()) {
            let bytes = e.to_canonical_bytes();
            let borrowable = !escaped(&e.log) && !e.rec.as_ref().is_some_and(|r| escaped(&r.kind));
            let want = borrowable.then(|| expected(&e));
            prop_assert_eq!(facts(&bytes), want);
        }
    }

    #[derive(Clone, Debug)]
    enum Mutation {
        Flip(Index, u8),
        Replace(Index, u8),
        Insert(Index, u8),
        Delete(Index),
        Swap([Index; 4]),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let byte = || {
            prop_oneof![
                any::<u8>(),
                proptest::sample::select(b"{}[]\":,\\-0123456789.eEabfnrtu \x1f\x7f\xc3".to_vec()),
            ]
        };
        prop_oneof![
            (any::<Index>(), 0..8_u8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
            (any::<Index>(), byte()).prop_map(|(at, b)| Mutation::Replace(at, b)),
            (any::<Index>(), byte()).prop_map(|(at, b)| Mutation::Insert(at, b)),
            any::<Index>().prop_map(Mutation::Delete),
            any::<[Index; 4]>().prop_map(Mutation::Swap),
        ]
    }

    fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
        let len = bytes.len();
        match m {
            Mutation::Flip(at, bit) => bytes[at.index(len)] ^= 1 << bit,
            Mutation::Replace(at, b) => bytes[at.index(len)] = *b,
            Mutation::Insert(at, b) => bytes.insert(at.index(len + 1), *b),
            Mutation::Delete(at) => {
                bytes.remove(at.index(len));
            }
            Mutation::Swap(at) => {
                let mut cut = at.map(|i| i.index(len + 1));
                cut.sort_unstable();
                let [a, b, c, d] = cut;
                *bytes = [
                    &bytes[..a],
                    &bytes[c..d],
                    &bytes[b..c],
                    &bytes[a..b],
                    &bytes[d..],
                ]
                .concat();
            }
        }
    }

    /// Damaged bytes are read only when the full check would accept them too, with the
    /// same facts; and most damage is declined.
    #[test]
    fn reads_damaged_bytes_only_when_they_are_canonical() {
        let (read, declined) = (Cell::new(0_u32), Cell::new(0_u32));
        let cases = (entry(), proptest::collection::vec(mutation(), 1..=2));
        TestRunner::new(Config::with_cases(20_000))
            .run(&cases, |(e, mutations)| {
                let mut bytes = e.to_canonical_bytes();
                for m in &mutations {
                    mutate(&mut bytes, m);
                }
                match facts(&bytes) {
                    None => declined.set(declined.get() + 1),
                    Some(f) => {
                        read.set(read.get() + 1);
                        let slow = slow(&bytes);
                        prop_assert!(slow.is_some(), "read {}", String::from_utf8_lossy(&bytes));
                        prop_assert_eq!(slow.as_ref().map(expected), Some(f));
                    }
                }
                Ok(())
            })
            .unwrap();
        let (read, declined) = (read.get(), declined.get());
        let total = read + declined;
        assert!(
            declined * 5 >= total * 4,
            "only {declined} of {total} declined"
        );
        assert!(read * 100 >= total, "only {read} of {total} read");
    }
}
