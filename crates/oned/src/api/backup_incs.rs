//! The increment chain of an incremental backup image, as OpenNebula's `BackupIncrements` and
//! `IncrementSet`: `INCREMENT` vectors (ID, TYPE FULL or INCREMENT, PARENT_ID, DATE, SIZE,
//! SOURCE) kept as a text template in `image_pool.increments` and shown as the image's
//! `BACKUP_INCREMENTS`. The image's size is the chain's total (`Image::add_increment`).

use template::{Template, Value};

/// Increments one image keeps, at most, whatever KEEP_LAST says: a bound on the stored text.
pub const MAX: usize = 512;

#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    pub id: i64,
    pub full: bool,
    pub parent: i64,
    pub date: i64,
    pub size: i64,
    pub source: String,
}

/// The chain stored as `text`, oldest first (an unreadable one is empty).
pub fn parse(text: &str) -> Vec<Increment> {
    let t = Template::parse(text).unwrap_or_default();
    let mut list: Vec<Increment> = t
        .get_all("INCREMENT")
        .filter_map(|a| {
            let n = |k: &str| a.vector_get(k).and_then(|v| v.trim().parse::<i64>().ok());
            Some(Increment {
                id: n("ID")?,
                full: a.vector_get("TYPE").is_some_and(|t| t.trim() == "FULL"),
                parent: n("PARENT_ID").unwrap_or(-1),
                date: n("DATE").unwrap_or(0),
                size: n("SIZE").unwrap_or(0),
                source: a.vector_get("SOURCE").unwrap_or("").to_string(),
            })
        })
        .collect();
    list.sort_by_key(|i| i.id);
    list
}

/// The chain as stored: each INCREMENT with its fields in the XSD's order.
pub fn to_text(list: &[Increment]) -> String {
    let mut t = Template::default();
    for i in list {
        let kind = if i.full { "FULL" } else { "INCREMENT" };
        t.push(
            "INCREMENT",
            Value::Vector(vec![
                ("DATE".into(), i.date.to_string()),
                ("ID".into(), i.id.to_string()),
                ("PARENT_ID".into(), i.parent.to_string()),
                ("SIZE".into(), i.size.to_string()),
                ("SOURCE".into(), i.source.clone()),
                ("TYPE".into(), kind.into()),
            ]),
        );
    }
    t.to_text()
}

/// The last increment's id (`BackupIncrements::last_increment_id`), -1 for none.
pub fn last_id(list: &[Increment]) -> i64 {
    list.last().map_or(-1, |i| i.id)
}

/// `IncrementSet::total_size`.
pub fn total(list: &[Increment]) -> i64 {
    list.iter().map(|i| i.size).sum()
}

/// `IncrementSet::new_increment`: a FULL first, INCREMENTs after it, each the child of the
/// last one. Its id.
pub fn add(list: &mut Vec<Increment>, source: String, size: i64, date: i64) -> i64 {
    let parent = last_id(list);
    let full = list.is_empty();
    let id = parent + 1;
    list.push(Increment {
        id,
        full,
        parent,
        date,
        size,
        source,
    });
    id
}

/// The dummy driver's `increment_flatten` with KEEP_LAST `keep`: the oldest increments merge
/// into the first one kept, which becomes the chain's FULL (`update_increments`); the merged
/// backup is as large as the largest it replaces. Whether anything merged.
pub fn flatten(list: &mut Vec<Increment>, keep: usize) -> bool {
    let keep = keep.clamp(1, MAX);
    if list.len() <= keep {
        return false;
    }
    let cut = list.len() - keep;
    let merged: Vec<Increment> = list.drain(..cut).collect();
    if let Some(first) = list.first_mut() {
        first.size = merged.iter().map(|i| i.size).fold(first.size, i64::max);
        first.full = true;
        first.parent = -1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_starts_full_and_grows_by_increments() {
        let mut list = Vec::new();
        assert_eq!(add(&mut list, "s0".into(), 10, 100), 0);
        assert_eq!(add(&mut list, "s1".into(), 4, 200), 1);
        let text = to_text(&list);
        let back = parse(&text);
        assert_eq!(back, list);
        assert!(back[0].full && !back[1].full);
        assert_eq!((back[1].parent, last_id(&back), total(&back)), (0, 1, 14));
        assert!(
            super::super::xml::template(&text, "BACKUP_INCREMENTS").starts_with(
                "<BACKUP_INCREMENTS><INCREMENT><DATE><![CDATA[100]]></DATE><ID><![CDATA[0]]></ID>\
             <PARENT_ID><![CDATA[-1]]></PARENT_ID><SIZE><![CDATA[10]]></SIZE>\
             <SOURCE><![CDATA[s0]]></SOURCE><TYPE><![CDATA[FULL]]></TYPE></INCREMENT>"
            )
        );
    }

    #[test]
    fn keep_last_merges_the_oldest_into_a_new_full() {
        let mut list = Vec::new();
        for (i, size) in [10, 3, 12, 2].into_iter().enumerate() {
            add(&mut list, format!("s{i}"), size, 0);
        }
        assert!(flatten(&mut list, 2));
        let ids: Vec<i64> = list.iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![2, 3]);
        assert!(list[0].full && list[0].parent == -1 && list[0].size == 12);
        assert_eq!(list[1].parent, 2);
        assert!(!flatten(&mut list, 2));
    }
}
