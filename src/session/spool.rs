//! Rows held for later (a portal fetched in batches, a cursor's or a new table's rows): kept in
//! memory up to `spool_memory_bytes`, the rest in an unlinked temporary file, as PostgreSQL's
//! tuplestore spills past `work_mem` (utils/sort/tuplestore.c). Memory stays flat whatever the
//! result's size; the file is bounded by `max_spool_bytes` and vanishes with the spool.
//!
//! Rows are written first and read once, front to back. The file holds the frames as they came
//! (type byte, length, body), so reading one back needs no decoding. Writes go through a buffer
//! to the page cache, synchronously: they are short and never wait on the network.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytes::{BufMut, BytesMut};

use crate::error::{code, SgError, SgResult};
use crate::protocol::Frame;

/// Where and how much a spool may hold (from `[server]`).
#[derive(Clone, Debug)]
pub struct Limits {
    pub memory_bytes: usize,
    pub disk_bytes: u64,
    /// The directory of the spill files; the system's temporary directory when None.
    pub dir: Option<PathBuf>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 4 << 20,
            disk_bytes: 16 << 30,
            dir: None,
        }
    }
}

enum Disk {
    None,
    Writing(BufWriter<File>),
    Reading(BufReader<File>),
}

/// Frames in arrival order, in memory and then on disk.
pub struct Spool {
    limits: Limits,
    memory: VecDeque<Frame>,
    memory_bytes: usize,
    disk: Disk,
    disk_bytes: u64,
    /// Frames not yet read back.
    len: usize,
    /// The first failure while writing (the file could not be made or written, or it would
    /// pass `max_spool_bytes`); later frames are dropped.
    failed: Option<SgError>,
}

impl Default for Spool {
    fn default() -> Self {
        Spool::new(Limits::default())
    }
}

impl Spool {
    pub fn new(limits: Limits) -> Spool {
        Spool {
            limits,
            memory: VecDeque::new(),
            memory_bytes: 0,
            disk: Disk::None,
            disk_bytes: 0,
            len: 0,
            failed: None,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Why frames were lost while writing, if they were: the spool is then unusable.
    pub fn failure(&self) -> Option<&SgError> {
        self.failed.as_ref()
    }

    /// Keeps `f` after the frames pushed before it. Frames go to memory until its share is full
    /// and to the file from then on, so reading back keeps their order.
    pub fn push(&mut self, f: &Frame) {
        if self.failed.is_some() {
            return;
        }
        let in_memory = matches!(self.disk, Disk::None)
            && self.memory_bytes + f.raw.len() <= self.limits.memory_bytes;
        if in_memory {
            self.memory_bytes += f.raw.len();
            self.memory.push_back(f.clone());
            self.len += 1;
            return;
        }
        match self.write(f) {
            Ok(()) => self.len += 1,
            Err(e) => self.failed = Some(e),
        }
    }

    fn write(&mut self, f: &Frame) -> SgResult<()> {
        if matches!(self.disk, Disk::None) {
            let file = match &self.limits.dir {
                Some(d) => tempfile::tempfile_in(d),
                None => tempfile::tempfile(),
            }
            .map_err(|e| disk_error("could not create a spill file", e))?;
            self.disk = Disk::Writing(BufWriter::with_capacity(1 << 16, file));
        }
        let Disk::Writing(w) = &mut self.disk else {
            return Err(SgError::internal("rows pushed to a spool being read"));
        };
        let size = f.raw.len() as u64;
        if self.disk_bytes + size > self.limits.disk_bytes {
            return Err(SgError::new(
                code::INSUFFICIENT_RESOURCES,
                format!(
                    "a held result of more than {} bytes (server.max_spool_bytes)",
                    self.limits.disk_bytes
                ),
            ));
        }
        w.write_all(&f.raw)
            .map_err(|e| disk_error("could not write a spill file", e))?;
        self.disk_bytes += size;
        Ok(())
    }

    /// The next frame in arrival order; None once every frame has been read.
    pub fn pop(&mut self) -> SgResult<Option<Frame>> {
        if let Some(f) = self.memory.pop_front() {
            self.memory_bytes -= f.raw.len();
            self.len -= 1;
            return Ok(Some(f));
        }
        if self.len == 0 {
            return Ok(None);
        }
        if let Disk::Writing(_) = self.disk {
            let Disk::Writing(w) = std::mem::replace(&mut self.disk, Disk::None) else {
                return Err(SgError::internal("spool state changed"));
            };
            let mut file = w
                .into_inner()
                .map_err(|e| disk_error("could not write a spill file", e.into_error()))?;
            file.seek(SeekFrom::Start(0))
                .map_err(|e| disk_error("could not read a spill file", e))?;
            self.disk = Disk::Reading(BufReader::with_capacity(1 << 16, file));
        }
        let Disk::Reading(r) = &mut self.disk else {
            return Err(SgError::internal("a spool lost its file"));
        };
        let mut head = [0u8; 5];
        r.read_exact(&mut head)
            .map_err(|e| disk_error("could not read a spill file", e))?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let body = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_sub(4))
            .ok_or_else(|| SgError::internal("a spill file holds a bad frame length"))?;
        let mut raw = BytesMut::with_capacity(body + 5);
        raw.put_slice(&head);
        raw.resize(body + 5, 0);
        r.read_exact(&mut raw[5..])
            .map_err(|e| disk_error("could not read a spill file", e))?;
        self.len -= 1;
        Ok(Some(Frame {
            tag: head[0],
            raw: raw.freeze(),
        }))
    }
}

fn disk_error(what: &'static str, e: std::io::Error) -> SgError {
    SgError::new(code::IO_ERROR, what).with_detail(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u32) -> Frame {
        Frame::build(b'D', format!("row {i}").as_bytes())
    }

    #[test]
    fn frames_come_back_in_order_across_memory_and_disk() {
        let mut s = Spool::new(Limits {
            memory_bytes: 40,
            ..Limits::default()
        });
        for i in 0..1000 {
            s.push(&row(i));
        }
        assert!(s.failure().is_none());
        assert!(s.memory.len() < 5, "memory holds only its share");
        assert_eq!(s.len(), 1000);
        for i in 0..1000 {
            let f = s.pop().ok().flatten().map(|f| f.raw);
            assert_eq!(f, Some(row(i).raw));
        }
        assert!(matches!(s.pop(), Ok(None)));
        assert!(s.is_empty());
    }

    #[test]
    fn past_the_disk_bound_the_spool_fails_with_53000() {
        let mut s = Spool::new(Limits {
            memory_bytes: 0,
            disk_bytes: 100,
            dir: None,
        });
        for i in 0..100 {
            s.push(&row(i));
        }
        assert_eq!(
            s.failure().map(|e| e.code),
            Some(code::INSUFFICIENT_RESOURCES)
        );
    }
}
