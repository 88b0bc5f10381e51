//! State changes held until the records they cover are delivered.
//!
//! A bookmark (with its walk's `progress`) and a reconciliation's time
//! each cover records a stream sent before them. With RECORD lines those
//! records are on stdout when the change comes, and it is applied at once.
//! With batch files they may still be in open files: the change then waits
//! for every file that held records of its stream when it came, and is
//! applied (and a STATE printed) once the last of them is announced. A file
//! that is never announced (a write failed, the run was killed) keeps it
//! held for good: the next run reads those records again.
//!
//! Changes are released in the order they came. Two changes of one stream
//! cannot be released out of order: a file the first waits on still holds
//! the stream's records when the second comes, so the second waits on it
//! too.

use super::Bookmark;
use crate::streams::StreamDef;

/// A change to the state, waiting on files.
pub struct Change {
    pub stream: &'static StreamDef,
    pub bookmark: Option<Bookmark>,
    /// A complete reconciliation that began at this time (epoch ms).
    pub reconciled: Option<i64>,
}

#[derive(Default)]
pub struct Held {
    waiting: Vec<(Change, Vec<u64>)>,
}

impl Held {
    /// Holds `change` until the files `waits` (their serials) are announced.
    pub fn hold(&mut self, change: Change, waits: Vec<u64>) {
        if change.bookmark.is_some() || change.reconciled.is_some() {
            self.waiting.push((change, waits));
        }
    }

    /// A file was announced.
    pub fn announced(&mut self, serial: u64) {
        for (_, waits) in &mut self.waiting {
            waits.retain(|&s| s != serial);
        }
    }

    /// The changes no file holds back any more, in the order they came.
    pub fn release(&mut self) -> Vec<Change> {
        let mut ready = Vec::new();
        let mut at = 0;
        while at < self.waiting.len() {
            if self.waiting[at].1.is_empty() {
                ready.push(self.waiting.remove(at).0);
            } else {
                at += 1;
            }
        }
        ready
    }

    /// How many changes are held (for the log at the end of a run).
    pub fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, at: i64) -> Change {
        Change {
            stream: crate::streams::find(name).unwrap(),
            bookmark: None,
            reconciled: Some(at),
        }
    }

    fn released(h: &mut Held) -> Vec<(&'static str, i64)> {
        h.release()
            .into_iter()
            .map(|c| (c.stream.name, c.reconciled.unwrap()))
            .collect()
    }

    #[test]
    fn a_change_waits_for_every_file_it_names_and_no_other() {
        let mut h = Held::default();
        h.hold(change("tickets", 1), vec![1, 2]);
        h.hold(change("teams", 2), vec![3]);
        h.hold(change("tickets", 3), vec![1, 2, 4]);
        h.hold(change("news", 4), vec![]);
        assert_eq!(released(&mut h), vec![("news", 4)]);
        h.announced(3);
        assert_eq!(released(&mut h), vec![("teams", 2)]);
        h.announced(1);
        assert!(released(&mut h).is_empty());
        h.announced(2);
        assert_eq!(released(&mut h), vec![("tickets", 1)]);
        h.announced(4);
        assert_eq!(released(&mut h), vec![("tickets", 3)]);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn a_batch_without_a_change_holds_nothing() {
        let mut h = Held::default();
        h.hold(
            Change {
                stream: crate::streams::find("tickets").unwrap(),
                bookmark: None,
                reconciled: None,
            },
            vec![1],
        );
        assert_eq!(h.len(), 0);
    }
}
