//! Byte buffers kept for reuse: response bodies, and the RECORD lines of a
//! page on their way to the writer.
//!
//! A page's buffers are up to a few MB each. Allocated afresh for every
//! page, glibc maps them, the kernel faults and zeroes their pages, and they
//! are unmapped again when freed: measured at 200k tickets, 14% of the tap's
//! CPU. Kept here instead, the same few buffers serve every page.

use std::sync::Mutex;

/// Buffers larger than this are not kept: one odd huge page must not pin
/// its memory for the rest of the run.
const MAX_KEPT_BYTES: usize = 8 << 20;

pub struct Pool {
    spare: Mutex<Vec<Vec<u8>>>,
    /// How many spare buffers are kept at most.
    max: usize,
}

impl Pool {
    pub fn new(max: usize) -> Pool {
        Pool {
            spare: Mutex::new(Vec::new()),
            max,
        }
    }

    /// An empty buffer, with the capacity of one given back when there is one.
    pub fn take(&self) -> Vec<u8> {
        self.spare().pop().unwrap_or_default()
    }

    /// Keeps `buf` for a later `take`, unless enough are kept already.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > MAX_KEPT_BYTES {
            return;
        }
        buf.clear();
        let mut spare = self.spare();
        if spare.len() < self.max {
            spare.push(buf);
        }
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic elsewhere while holding the lock leaves a valid list.
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_with_their_capacity_and_huge_ones_are_dropped() {
        let pool = Pool::new(2);
        assert_eq!(pool.take().capacity(), 0);
        let mut buf = Vec::with_capacity(1000);
        buf.extend_from_slice(b"old lines");
        pool.give(buf);
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() >= 1000);
        pool.give(Vec::with_capacity(MAX_KEPT_BYTES + 1));
        assert_eq!(pool.take().capacity(), 0, "too big to keep");
        for _ in 0..3 {
            pool.give(Vec::with_capacity(10));
        }
        assert_eq!(pool.spare().len(), 2, "at most max kept");
    }
}
