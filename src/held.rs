//! stdout, held back until the API has answered.
//!
//! The streams send their SCHEMA before their first request, and a sync
//! ends with a STATE. When nothing ever answers at `api_url` (a typo, a
//! wrong port, no network), that output would tell a target a sync took
//! place: an empty STATE it would store, tables it would create. So
//! whatever is written before the first HTTP response (of any status) is
//! kept here, handed on at the first write after one, and dropped if none
//! came. Once open, writes pass straight through.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct UntilAnswered {
    inner: Box<dyn Write + Send>,
    /// Set by the client at its first response.
    answered: Arc<AtomicBool>,
    /// What was written before it; `None` once handed on.
    held: Option<Vec<u8>>,
}

impl UntilAnswered {
    pub fn new(inner: Box<dyn Write + Send>, answered: Arc<AtomicBool>) -> Self {
        UntilAnswered {
            inner,
            answered,
            held: Some(Vec::new()),
        }
    }

    /// Whether output may go out: hands on what was held, the first time.
    fn open(&mut self) -> io::Result<bool> {
        if self.held.is_none() {
            return Ok(true);
        }
        if !self.answered.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let held = self.held.take().unwrap_or_default();
        self.inner.write_all(&held)?;
        Ok(true)
    }
}

impl Write for UntilAnswered {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.open()? {
            return self.inner.write(buf);
        }
        if let Some(held) = &mut self.held {
            held.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.open()? {
            return self.inner.write_all(buf);
        }
        if let Some(held) = &mut self.held {
            held.extend_from_slice(buf);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.open()? {
            return self.inner.flush();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A `Write` whose bytes the test can read after handing it over.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn nothing_goes_out_until_the_api_answers_then_everything_in_order() {
        let out = Shared::default();
        let answered = Arc::new(AtomicBool::new(false));
        let mut w = UntilAnswered::new(Box::new(out.clone()), answered.clone());
        w.write_all(b"schema\n").unwrap();
        w.flush().unwrap();
        assert!(out.0.lock().unwrap().is_empty());
        answered.store(true, Ordering::Relaxed);
        w.write_all(b"record\n").unwrap();
        w.flush().unwrap();
        assert_eq!(&*out.0.lock().unwrap(), b"schema\nrecord\n");
        w.write_all(b"state\n").unwrap();
        assert_eq!(&*out.0.lock().unwrap(), b"schema\nrecord\nstate\n");
    }

    #[test]
    fn what_was_held_is_dropped_when_nothing_answered() {
        let out = Shared::default();
        let answered = Arc::new(AtomicBool::new(false));
        let mut w = UntilAnswered::new(Box::new(out.clone()), answered);
        w.write_all(b"schema\n").unwrap();
        w.write_all(b"{\"type\":\"STATE\",\"value\":{}}\n").unwrap();
        w.flush().unwrap();
        drop(w);
        assert!(out.0.lock().unwrap().is_empty());
    }
}
