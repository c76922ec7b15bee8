//! Just enough of bbolt's file format (etcd's backend) to check that a snapshot is a database
//! and to find its revision without etcd: the two meta pages (magic, version, checksum), the
//! root bucket, and the last key of etcd's `key` bucket, whose first 8 bytes are the revision
//! (`revToBytes`: main revision big-endian, `_`, sub revision). What `etcdutl snapshot status`
//! reports as `revision`.
//!
//! Pages are read on demand through [`ReadAt`] (a snapshot can be gigabytes); every offset,
//! length and page number comes from the file and is checked before use, and the descent is
//! bounded, so a crafted file gives an error, never a panic or a loop.

use std::io;

/// bbolt's `magic`, `version`, page flags and `bucketLeafFlag`.
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
/// `page` header: id u64, flags u16, count u16, overflow u32.
const PAGE_HEADER: usize = 16;
/// Both element kinds are 16 bytes (`branchPageElement`, `leafPageElement`).
const ELEMENT: usize = 16;
/// The meta fields before `checksum` (magic … txid), which the FNV-1a checksum covers.
const META_CHECKED: usize = 56;
/// A bucket header in a leaf value: root page id, sequence.
const BUCKET_HEADER: usize = 16;
/// B+ trees of a few GB are 4–5 levels deep; more means a loop in a crafted file.
const MAX_DEPTH: usize = 32;
/// bbolt's page size is the OS page size: 4 KiB on amd64, up to 64 KiB elsewhere.
const PAGE_SIZES: std::ops::RangeInclusive<u32> = 512..=65536;
/// One page with its overflow pages read at once (a large value); etcd's request limit keeps
/// values far below.
const MAX_SPAN: u64 = 64 * 1024 * 1024;

/// Positioned reads of the database bytes.
pub trait ReadAt {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|end| *end <= self.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }
}

/// What the database says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub page_size: u32,
    /// The transaction of the newer valid meta page.
    pub txid: u64,
    /// The newest revision in etcd's `key` bucket; `None` when it holds no key.
    pub revision: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoltError {
    #[error("not a bbolt database: {0}")]
    NotBolt(String),
    #[error("bbolt page {page}: {reason}")]
    BadPage { page: u64, reason: String },
    #[error("no etcd key bucket: not an etcd database")]
    NoKeyBucket,
    #[error("cannot read: {0}")]
    Read(String),
}

/// Reads the facts of the database of `len` bytes behind `db`.
pub fn inspect<R: ReadAt + ?Sized>(db: &R, len: u64) -> Result<Facts, BoltError> {
    let first = read_meta(db, 0, len)?;
    let page_size = match &first {
        Ok(meta) => meta.page_size,
        // A torn first meta page: the second sits at the page size every valid meta names;
        // try the usual sizes.
        Err(_) => *[4096u32, 16384, 65536]
            .iter()
            .find(|size| matches!(read_meta(db, u64::from(**size), len), Ok(Ok(_))))
            .ok_or_else(|| BoltError::NotBolt(first.clone().err().unwrap_or_default()))?,
    };
    let second = read_meta(db, u64::from(page_size), len)?;
    let meta = match (first, second) {
        (Ok(a), Ok(b)) => {
            if a.txid >= b.txid {
                a
            } else {
                b
            }
        }
        (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
        (Err(a), Err(_)) => return Err(BoltError::NotBolt(a)),
    };
    if meta.page_size != page_size {
        return Err(BoltError::NotBolt(
            "the meta pages disagree on the page size".into(),
        ));
    }
    let pages = len / u64::from(page_size);
    if meta.high_water > pages {
        return Err(BoltError::NotBolt(format!(
            "it claims {} pages but holds {pages}: truncated",
            meta.high_water
        )));
    }
    let reader = Reader {
        db,
        page_size,
        pages: meta.high_water,
    };
    let bucket = reader
        .find_bucket(meta.root, b"key")?
        .ok_or(BoltError::NoKeyBucket)?;
    let last = reader.last_key(bucket)?;
    let revision = match last {
        None => None,
        Some(key) => Some(revision_of(&key).ok_or_else(|| BoltError::BadPage {
            page: meta.root,
            reason: "the last key of the key bucket is not a revision".into(),
        })?),
    };
    Ok(Facts {
        page_size,
        txid: meta.txid,
        revision,
    })
}

/// etcd's `bytesToRev`: 8 bytes big-endian main revision, `_`, 8 bytes sub revision (and a
/// `t` for a tombstone).
fn revision_of(key: &[u8]) -> Option<u64> {
    if key.len() < 17 || key[8] != b'_' {
        return None;
    }
    Some(u64::from_be_bytes(key[..8].try_into().ok()?))
}

#[derive(Clone)]
struct Meta {
    page_size: u32,
    root: u64,
    high_water: u64,
    txid: u64,
}

/// The meta page at `offset`: `Ok(Err(why))` when it is not a valid one (bbolt falls back on
/// the other), `Err` when the file cannot be read there.
fn read_meta<R: ReadAt + ?Sized>(
    db: &R,
    offset: u64,
    len: u64,
) -> Result<Result<Meta, String>, BoltError> {
    let mut buf = [0u8; PAGE_HEADER + 64];
    if offset + buf.len() as u64 > len {
        return Ok(Err(format!("{len} bytes is too short for a meta page")));
    }
    db.read_exact_at(&mut buf, offset)
        .map_err(|e| BoltError::Read(e.to_string()))?;
    let flags = u16_at(&buf, 8);
    let m = &buf[PAGE_HEADER..];
    if flags & META == 0 {
        return Ok(Err(format!("page at byte {offset} is not a meta page")));
    }
    if u32_at(m, 0) != MAGIC {
        return Ok(Err("wrong magic number".into()));
    }
    if u32_at(m, 4) != VERSION {
        return Ok(Err(format!("format version {} (want 2)", u32_at(m, 4))));
    }
    if fnv1a64(&m[..META_CHECKED]) != u64_at(m, META_CHECKED) {
        return Ok(Err("meta page checksum mismatch".into()));
    }
    let page_size = u32_at(m, 8);
    if !PAGE_SIZES.contains(&page_size) || !page_size.is_power_of_two() {
        return Ok(Err(format!("page size {page_size}")));
    }
    Ok(Ok(Meta {
        page_size,
        root: u64_at(m, 16),
        high_water: u64_at(m, 40),
        txid: u64_at(m, 48),
    }))
}

/// Where a bucket's tree starts: a page, or a leaf page inlined in its parent's value.
enum Bucket {
    Page(u64),
    Inline(Vec<u8>),
}

struct Reader<'a, R: ReadAt + ?Sized> {
    db: &'a R,
    page_size: u32,
    pages: u64,
}

/// One page (with its overflow) in memory.
struct Page {
    id: u64,
    bytes: Vec<u8>,
}

impl<R: ReadAt + ?Sized> Reader<'_, R> {
    fn page(&self, id: u64) -> Result<Page, BoltError> {
        let bad = |reason: String| BoltError::BadPage { page: id, reason };
        if id < 2 || id >= self.pages {
            return Err(bad(format!("outside the database's {} pages", self.pages)));
        }
        let size = u64::from(self.page_size);
        let mut header = [0u8; PAGE_HEADER];
        self.db
            .read_exact_at(&mut header, id * size)
            .map_err(|e| BoltError::Read(e.to_string()))?;
        if u64_at(&header, 0) != id {
            return Err(bad(format!("its header says page {}", u64_at(&header, 0))));
        }
        let span = (1 + u64::from(u32_at(&header, 12))) * size;
        if span > MAX_SPAN || id * size + span > self.pages * size {
            return Err(bad(format!("{span} bytes with its overflow")));
        }
        let mut bytes = vec![0u8; span as usize];
        self.db
            .read_exact_at(&mut bytes, id * size)
            .map_err(|e| BoltError::Read(e.to_string()))?;
        Ok(Page { id, bytes })
    }

    /// The bucket called `name` in the bucket whose root page is `root`.
    fn find_bucket(&self, root: u64, name: &[u8]) -> Result<Option<Bucket>, BoltError> {
        let mut id = root;
        for _ in 0..MAX_DEPTH {
            let page = self.page(id)?;
            match kind(&page.bytes, page.id)? {
                BRANCH => {
                    let elements = branch_elements(&page.bytes, page.id)?;
                    // The last element whose key is not after `name` (bbolt's search).
                    let next = elements
                        .iter()
                        .rev()
                        .find(|(key, _)| key.as_slice() <= name)
                        .or(elements.first())
                        .map(|(_, child)| *child);
                    match next {
                        Some(child) => id = child,
                        None => return Ok(None),
                    }
                }
                _ => {
                    let found = leaf_elements(&page.bytes, page.id)?
                        .into_iter()
                        .find(|e| e.key == name && e.flags & BUCKET_LEAF != 0);
                    return found.map(|e| bucket_of(&e.value, page.id)).transpose();
                }
            }
        }
        Err(BoltError::BadPage {
            page: root,
            reason: format!("more than {MAX_DEPTH} levels"),
        })
    }

    /// The greatest key of a bucket, `None` when it is empty.
    fn last_key(&self, bucket: Bucket) -> Result<Option<Vec<u8>>, BoltError> {
        let mut id = match bucket {
            Bucket::Inline(page) => {
                return Ok(leaf_elements(&page, 0)?.pop().map(|e| e.key));
            }
            Bucket::Page(id) => id,
        };
        for _ in 0..MAX_DEPTH {
            let page = self.page(id)?;
            match kind(&page.bytes, page.id)? {
                BRANCH => match branch_elements(&page.bytes, page.id)?.pop() {
                    Some((_, child)) => id = child,
                    None => return Ok(None),
                },
                _ => return Ok(leaf_elements(&page.bytes, page.id)?.pop().map(|e| e.key)),
            }
        }
        Err(BoltError::BadPage {
            page: id,
            reason: format!("more than {MAX_DEPTH} levels"),
        })
    }
}

fn bucket_of(value: &[u8], page: u64) -> Result<Bucket, BoltError> {
    if value.len() < BUCKET_HEADER {
        return Err(BoltError::BadPage {
            page,
            reason: "a bucket value shorter than its header".into(),
        });
    }
    match u64_at(value, 0) {
        0 => Ok(Bucket::Inline(value[BUCKET_HEADER..].to_vec())),
        root => Ok(Bucket::Page(root)),
    }
}

/// A branch or leaf page's kind; anything else is an error where a tree page is expected.
fn kind(page: &[u8], id: u64) -> Result<u16, BoltError> {
    match u16_at(page, 8) {
        flags if flags & BRANCH != 0 => Ok(BRANCH),
        flags if flags & LEAF != 0 => Ok(LEAF),
        flags => Err(BoltError::BadPage {
            page: id,
            reason: format!("flags {flags:#x} where a branch or leaf page belongs"),
        }),
    }
}

/// The `(key, child page)` pairs of a branch page.
fn branch_elements(page: &[u8], id: u64) -> Result<Vec<(Vec<u8>, u64)>, BoltError> {
    let count = usize::from(u16_at(page, 10));
    (0..count)
        .map(|i| {
            let at = PAGE_HEADER + i * ELEMENT;
            let element = slice(page, at, ELEMENT, id)?;
            let key = slice(
                page,
                at + u32_at(element, 0) as usize,
                u32_at(element, 4) as usize,
                id,
            )?;
            Ok((key.to_vec(), u64_at(element, 8)))
        })
        .collect()
}

struct LeafElement {
    flags: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

fn leaf_elements(page: &[u8], id: u64) -> Result<Vec<LeafElement>, BoltError> {
    if page.len() < PAGE_HEADER {
        return Err(BoltError::BadPage {
            page: id,
            reason: "shorter than a page header".into(),
        });
    }
    let count = usize::from(u16_at(page, 10));
    (0..count)
        .map(|i| {
            let at = PAGE_HEADER + i * ELEMENT;
            let element = slice(page, at, ELEMENT, id)?;
            let key_at = at + u32_at(element, 4) as usize;
            let key_len = u32_at(element, 8) as usize;
            let key = slice(page, key_at, key_len, id)?;
            let value = slice(page, key_at + key_len, u32_at(element, 12) as usize, id)?;
            Ok(LeafElement {
                flags: u32_at(element, 0),
                key: key.to_vec(),
                value: value.to_vec(),
            })
        })
        .collect()
}

fn slice(page: &[u8], at: usize, len: usize, id: u64) -> Result<&[u8], BoltError> {
    at.checked_add(len)
        .and_then(|end| page.get(at..end))
        .ok_or_else(|| BoltError::BadPage {
            page: id,
            reason: format!("an element reaches past the page ({len} bytes at {at})"),
        })
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Go's `hash/fnv` New64a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
#[path = "bolt_tests.rs"]
mod tests;
