//! [`ReadReply`]: how a filesystem answers a read, now or later from another thread.

use crate::errno::Errno;

type Answer = Box<dyn for<'a> FnOnce(std::result::Result<&'a [u8], Errno>) + Send>;

/// The answer to one read. It is `Send`: a filesystem may move it to a worker thread and
/// answer from there (big reads are decompressed in parallel on a pool while the request loop
/// goes on). Exactly one of [`ReadReply::data`] and [`ReadReply::error`] is called; a reply
/// dropped unanswered answers EIO.
pub struct ReadReply {
    answer: Option<Answer>,
}

impl ReadReply {
    /// A reply that hands the outcome to `f`.
    pub fn new(
        f: impl for<'a> FnOnce(std::result::Result<&'a [u8], Errno>) + Send + 'static,
    ) -> Self {
        ReadReply {
            answer: Some(Box::new(f)),
        }
    }

    /// Answer with these bytes (short only at end of file).
    pub fn data(mut self, data: &[u8]) {
        if let Some(f) = self.answer.take() {
            f(Ok(data));
        }
    }

    /// Answer with an error.
    pub fn error(mut self, e: Errno) {
        if let Some(f) = self.answer.take() {
            f(Err(e));
        }
    }

    /// Answer with `r`.
    pub fn result(self, r: crate::Result<Vec<u8>>) {
        match r {
            Ok(d) => self.data(&d),
            Err(e) => self.error(e),
        }
    }

    /// A reply and a receiver that gets the outcome as an owned value: for callers that need
    /// the bytes themselves (tests, a filesystem reading from another one).
    pub fn channel() -> (ReadReply, std::sync::mpsc::Receiver<crate::Result<Vec<u8>>>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let reply = ReadReply::new(move |r| {
            let _ = tx.send(r.map(<[u8]>::to_vec));
        });
        (reply, rx)
    }
}

impl Drop for ReadReply {
    fn drop(&mut self) {
        if let Some(f) = self.answer.take() {
            f(Err(Errno::EIO));
        }
    }
}

impl std::fmt::Debug for ReadReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadReply")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_once_from_another_thread_or_eio_when_dropped() {
        let (reply, rx) = ReadReply::channel();
        std::thread::spawn(move || reply.data(b"abc"))
            .join()
            .unwrap();
        assert_eq!(rx.recv().unwrap(), Ok(b"abc".to_vec()));
        let (reply, rx) = ReadReply::channel();
        drop(reply);
        assert_eq!(rx.recv().unwrap(), Err(Errno::EIO));
    }
}
