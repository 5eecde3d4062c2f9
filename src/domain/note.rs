//! The Notes tab: free text kept as revisions. What a revision may contain, and what it
//! added and removed compared with the one before.

use serde::{Deserialize, Serialize};

use super::field::FieldError;

/// Enough for years of stamped lines; beyond this a note is a document, not a note.
pub const MAX_CHARS: usize = 100_000;

/// Checks a note's text and returns it with line endings made `\n`.
pub fn check(text: &str) -> Result<String, FieldError> {
    checked(text, "notes")
}

/// Checks what someone adds below the notes (the API's `text`) and returns it without
/// the blank lines around it: a line that is only whitespace adds nothing worth a
/// revision.
pub fn line(text: &str) -> Result<String, FieldError> {
    let text = checked(text, "text")?;
    if text.trim().is_empty() {
        return Err(FieldError::new("text", "must not be blank"));
    }
    Ok(text.trim_matches('\n').to_owned())
}

fn checked(text: &str, field: &str) -> Result<String, FieldError> {
    let text = text.replace("\r\n", "\n");
    if text.chars().count() > MAX_CHARS {
        return Err(FieldError::new(
            field,
            format!("is longer than {MAX_CHARS} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text)
}

/// Whether `new` only adds to `old` (typing after what was saved), which anyone who may
/// edit the record may do; anything else rewrites saved text.
pub fn only_appends(old: &str, new: &str) -> bool {
    new.starts_with(old)
}

/// `old` followed by `line` on a line of its own. The ledger appends in SQL
/// (`store::notes::append_line`, one statement); this is the rule it follows, and the
/// tests hold it to.
pub fn append_line(old: &str, line: &str) -> String {
    if old.is_empty() {
        line.to_owned()
    } else if old.ends_with('\n') {
        format!("{old}{line}")
    } else {
        format!("{old}\n{line}")
    }
}

/// The lines a revision removed and added, found by trimming the lines both share at
/// the start and the end. Each revision keeps its own, so that a record's history need
/// not read whole texts, which grow with every stamped line, to show what changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub removed: Vec<String>,
    pub added: Vec<String>,
}

impl Change {
    /// What [`append_line`] adds, known without the text it adds to.
    pub fn appended(line: &str) -> Self {
        Self {
            removed: Vec::new(),
            added: line.lines().map(str::to_owned).collect(),
        }
    }
}

pub fn change(old: &str, new: &str) -> Change {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let owned = |s: &[&str]| s.iter().map(|l| (*l).to_owned()).collect();
    Change {
        removed: owned(&a[prefix..a.len() - suffix]),
        added: owned(&b[prefix..b.len() - suffix]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_control_characters() {
        assert!(check(&"x".repeat(MAX_CHARS)).is_ok());
        assert_eq!(
            check(&"x".repeat(MAX_CHARS + 1)).unwrap_err().field,
            "notes"
        );
        assert!(check("a\u{0}b").is_err());
        assert_eq!(check("a\r\nb\tc").unwrap(), "a\nb\tc");
    }

    #[test]
    fn an_added_line() {
        assert_eq!(
            line("\r\nCalled.\r\nBooked.\n\n").unwrap(),
            "Called.\nBooked."
        );
        assert_eq!(line("  indented").unwrap(), "  indented");
        for blank in ["", " ", "\n\n", "\t\r\n"] {
            assert_eq!(line(blank).unwrap_err().field, "text", "{blank:?}");
        }
        assert_eq!(line("a\u{7}b").unwrap_err().field, "text");
        assert_eq!(line(&"x".repeat(MAX_CHARS + 1)).unwrap_err().field, "text");
    }

    #[test]
    fn appending_versus_rewriting() {
        assert!(only_appends("Called.", "Called.\nBooked."));
        assert!(!only_appends("Called.", "Booked."));
        assert_eq!(append_line("", "x"), "x");
        assert_eq!(append_line("a", "x"), "a\nx");
        assert_eq!(append_line("a\n", "x"), "a\nx");
    }

    #[test]
    fn changes_between_revisions() {
        let c = change("one\ntwo\nthree", "one\n2\nthree");
        assert_eq!(
            (c.removed, c.added),
            (vec!["two".to_owned()], vec!["2".to_owned()])
        );
        let c = change("one", "one\n10/18/2018 11:00:04 AM MKH – Called.");
        assert!(c.removed.is_empty());
        assert_eq!(c.added, ["10/18/2018 11:00:04 AM MKH – Called."]);
        assert_eq!(change("", ""), Change::default());
    }

    proptest::proptest! {
        /// The change an appended line is stored with is the one between the texts.
        #[test]
        fn an_appended_line_is_the_change(
            old in "(\\PC{0,6}\n?){0,4}",
            raw in "(\\PC{0,6}\n?){1,3}",
        ) {
            if let (Ok(old), Ok(added)) = (check(&old), line(&raw)) {
                proptest::prop_assert_eq!(
                    change(&old, &append_line(&old, &added)),
                    Change::appended(&added)
                );
            }
        }
    }
}
