//! What `audit verify` checks of the record chains history walks: that each entry links
//! to its record's previous entry, and each record's head to its newest, all recomputed
//! from the entries' own columns (which are checked against their bytes).

use std::collections::HashMap;

/// Each record's newest entry so far in the walk, by kind and id.
#[derive(Debug, Default)]
pub struct Links {
    newest: HashMap<String, HashMap<i64, i64>>,
    /// Where the walk began: links below it lead into entries it did not read.
    from: i64,
    /// Links into entries before `from`, to look up: `(idx, prev, kind, id)`.
    before: Vec<(i64, i64, String, i64)>,
}

impl Links {
    pub fn new(from: i64) -> Self {
        Self {
            from,
            ..Self::default()
        }
    }

    /// Entry `idx` of `record`, linked to `prev`: what is wrong with its link, if
    /// anything. Entries come in index order.
    pub fn check(
        &mut self,
        idx: i64,
        record: Option<(&str, i64)>,
        prev: Option<i64>,
    ) -> Option<String> {
        let Some((kind, id)) = record else {
            return prev.map(|p| format!("it names no record, yet links to entry {p}"));
        };
        let ids = match self.newest.get_mut(kind) {
            Some(ids) => ids,
            None => self.newest.entry(kind.to_owned()).or_default(),
        };
        match (ids.insert(id, idx), prev) {
            (Some(want), Some(p)) if p == want => None,
            (Some(want), _) => Some(format!(
                "it links to {}, where its record's previous entry is {want}: history \
                 would skip or show entries wrongly",
                shown(prev)
            )),
            (None, Some(p)) if p < self.from => {
                self.before.push((idx, p, kind.to_owned(), id));
                None
            }
            // Before `from`, a first link of none cannot be told from a cut one here.
            (None, None) => None,
            (None, Some(p)) => Some(format!(
                "it links to entry {p}, yet it is its record's first entry"
            )),
        }
    }

    /// The links into entries before the walk, to be checked against those entries'
    /// records: `(idx, prev)`.
    pub fn before(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.before.iter().map(|(idx, prev, _, _)| (*idx, *prev))
    }

    /// Of the links into entries before the walk, the ones whose target names another
    /// record (or none), given the records of those targets.
    pub fn foreign(&self, targets: &[(i64, String, i64)]) -> Vec<(i64, String)> {
        let found: HashMap<i64, (&str, i64)> = targets
            .iter()
            .map(|(idx, kind, id)| (*idx, (kind.as_str(), *id)))
            .collect();
        self.before
            .iter()
            .filter(|(_, prev, kind, id)| found.get(prev) != Some(&(kind.as_str(), *id)))
            .map(|(idx, prev, _, _)| {
                (
                    *idx,
                    format!("it links to entry {prev}, which is not of its record"),
                )
            })
            .collect()
    }

    /// What is wrong with the stored heads, given every head and the size of the log
    /// walked (heads past it moved with appends made since).
    pub fn heads(&self, heads: &[(String, i64, i64)], walked: i64) -> Vec<String> {
        let mut wrong = Vec::new();
        let mut headed: HashMap<(&str, i64), i64> = HashMap::new();
        for (kind, id, head) in heads {
            headed.insert((kind.as_str(), *id), *head);
            if *head >= walked {
                continue;
            }
            let newest = self.newest.get(kind).and_then(|ids| ids.get(id));
            match newest {
                Some(n) if n == head => {}
                Some(n) => wrong.push(format!(
                    "the head of {kind} {id} is entry {head}, where its newest is {n}: \
                     its history would not show what came after"
                )),
                None if *head < self.from => {}
                None => wrong.push(format!(
                    "the head of {kind} {id} is entry {head}, which is not of that record"
                )),
            }
        }
        for (kind, ids) in &self.newest {
            for (id, newest) in ids {
                if !headed.contains_key(&(kind.as_str(), *id)) {
                    wrong.push(format!(
                        "{kind} {id} has no head, though entry {newest} is its newest: \
                         its history would show none of its entries"
                    ));
                }
            }
        }
        wrong.sort();
        wrong
    }
}

fn shown(prev: Option<i64>) -> String {
    prev.map_or_else(|| "no entry".into(), |p| format!("entry {p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_links_each_entry_to_its_records_previous_one() {
        let mut links = Links::new(0);
        assert_eq!(links.check(0, Some(("client", 1)), None), None);
        assert_eq!(links.check(1, Some(("client", 2)), None), None);
        assert_eq!(links.check(2, None, None), None);
        assert_eq!(links.check(3, Some(("client", 1)), Some(0)), None);
        let heads = [("client".into(), 1, 3), ("client".into(), 2, 1)];
        assert!(links.heads(&heads, 4).is_empty());
    }

    #[test]
    fn a_link_that_skips_an_entry_or_starts_anew_is_named() {
        let mut links = Links::new(0);
        links.check(0, Some(("client", 1)), None);
        links.check(1, Some(("client", 1)), Some(0));
        let skipped = links.check(2, Some(("client", 1)), Some(0)).unwrap();
        assert!(skipped.contains("previous entry is 1"), "{skipped}");
        assert!(links.check(3, Some(("client", 1)), None).is_some());
        assert!(links.check(4, Some(("client", 9)), Some(2)).is_some());
        assert!(links.check(5, None, Some(4)).is_some());
    }

    #[test]
    fn a_head_behind_its_newest_entry_or_missing_is_named() {
        let mut links = Links::new(0);
        links.check(0, Some(("client", 1)), None);
        links.check(1, Some(("client", 1)), Some(0));
        links.check(2, Some(("session", 4)), None);
        let wrong = links.heads(&[("client".into(), 1, 0)], 3);
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(wrong[0].contains("session 4 has no head"), "{wrong:?}");
        assert!(wrong[1].contains("newest is 1"), "{wrong:?}");
        // A head moved by an append after the walk is not judged.
        let moved = [("client".into(), 1, 7), ("session".into(), 4, 2)];
        assert!(links.heads(&moved, 3).is_empty());
    }

    #[test]
    fn links_into_entries_before_the_walk_are_checked_by_their_targets() {
        let mut links = Links::new(10);
        assert_eq!(links.check(10, Some(("client", 1)), Some(4)), None);
        assert_eq!(links.check(11, Some(("client", 2)), Some(5)), None);
        assert_eq!(links.before().collect::<Vec<_>>(), [(10, 4), (11, 5)]);
        let foreign = links.foreign(&[(4, "client".into(), 1), (5, "client".into(), 3)]);
        assert_eq!(foreign.len(), 1);
        assert_eq!(foreign[0].0, 11);
        assert!(links.check(12, Some(("client", 3)), Some(10)).is_some());
    }
}
