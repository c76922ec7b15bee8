use super::*;

const SIZE: usize = 4096;

/// A revision key as etcd writes it.
fn rev(main: u64, sub: u64) -> Vec<u8> {
    let mut key = main.to_be_bytes().to_vec();
    key.push(b'_');
    key.extend_from_slice(&sub.to_be_bytes());
    key
}

fn meta(txid: u64, root: u64, pages: u64) -> Vec<u8> {
    let mut page = vec![0u8; SIZE];
    page[8..10].copy_from_slice(&META.to_le_bytes());
    let mut m = Vec::new();
    m.extend_from_slice(&MAGIC.to_le_bytes());
    m.extend_from_slice(&VERSION.to_le_bytes());
    m.extend_from_slice(&(SIZE as u32).to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&root.to_le_bytes());
    m.extend_from_slice(&0u64.to_le_bytes());
    m.extend_from_slice(&2u64.to_le_bytes()); // freelist
    m.extend_from_slice(&pages.to_le_bytes());
    m.extend_from_slice(&txid.to_le_bytes());
    let sum = fnv1a64(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    page[PAGE_HEADER..PAGE_HEADER + m.len()].copy_from_slice(&m);
    page
}

/// A leaf page (id 0 for an inline page) of `(flags, key, value)`.
fn leaf(id: u64, elements: &[(u32, Vec<u8>, Vec<u8>)], len: usize) -> Vec<u8> {
    let mut page = vec![0u8; len];
    page[..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&LEAF.to_le_bytes());
    page[10..12].copy_from_slice(&(elements.len() as u16).to_le_bytes());
    let mut data = PAGE_HEADER + elements.len() * ELEMENT;
    for (i, (flags, key, value)) in elements.iter().enumerate() {
        let at = PAGE_HEADER + i * ELEMENT;
        page[at..at + 4].copy_from_slice(&flags.to_le_bytes());
        page[at + 4..at + 8].copy_from_slice(&((data - at) as u32).to_le_bytes());
        page[at + 8..at + 12].copy_from_slice(&(key.len() as u32).to_le_bytes());
        page[at + 12..at + 16].copy_from_slice(&(value.len() as u32).to_le_bytes());
        page[data..data + key.len()].copy_from_slice(key);
        data += key.len();
        page[data..data + value.len()].copy_from_slice(value);
        data += value.len();
    }
    page
}

fn branch(id: u64, children: &[(Vec<u8>, u64)]) -> Vec<u8> {
    let mut page = vec![0u8; SIZE];
    page[..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&BRANCH.to_le_bytes());
    page[10..12].copy_from_slice(&(children.len() as u16).to_le_bytes());
    let mut data = PAGE_HEADER + children.len() * ELEMENT;
    for (i, (key, child)) in children.iter().enumerate() {
        let at = PAGE_HEADER + i * ELEMENT;
        page[at..at + 4].copy_from_slice(&((data - at) as u32).to_le_bytes());
        page[at + 4..at + 8].copy_from_slice(&(key.len() as u32).to_le_bytes());
        page[at + 8..at + 16].copy_from_slice(&child.to_le_bytes());
        page[data..data + key.len()].copy_from_slice(key);
        data += key.len();
    }
    page
}

fn bucket(root: u64) -> Vec<u8> {
    let mut value = root.to_le_bytes().to_vec();
    value.extend_from_slice(&0u64.to_le_bytes());
    value
}

fn freelist() -> Vec<u8> {
    let mut page = vec![0u8; SIZE];
    page[..8].copy_from_slice(&2u64.to_le_bytes());
    page[8..10].copy_from_slice(&0x10u16.to_le_bytes());
    page
}

/// meta, meta, freelist, then `pages` from id 3 on; the root bucket at `root`.
fn database(root: u64, pages: Vec<Vec<u8>>) -> Vec<u8> {
    let count = 3 + pages.len() as u64;
    let mut db = meta(4, root, count);
    db.extend(meta(5, root, count));
    db.extend(freelist());
    for page in pages {
        db.extend(page);
    }
    db
}

/// etcd's layout: a root bucket with `alarm`, `key`, `members`, `meta` buckets; the key bucket
/// a branch over two leaves.
fn etcd_like() -> Vec<u8> {
    let root = leaf(
        3,
        &[
            (BUCKET_LEAF, b"alarm".to_vec(), {
                let mut v = bucket(0);
                v.extend(leaf(0, &[], PAGE_HEADER));
                v
            }),
            (BUCKET_LEAF, b"key".to_vec(), bucket(4)),
            (BUCKET_LEAF, b"members".to_vec(), bucket(7)),
        ],
        SIZE,
    );
    let keys = branch(4, &[(rev(1, 0), 5), (rev(40, 0), 6)]);
    let left = leaf(
        5,
        &[(0, rev(1, 0), b"a".to_vec()), (0, rev(2, 0), b"b".to_vec())],
        SIZE,
    );
    let right = leaf(
        6,
        &[
            (0, rev(40, 0), b"c".to_vec()),
            (0, rev(53, 1), b"d".to_vec()),
        ],
        SIZE,
    );
    let members = leaf(7, &[], SIZE);
    database(3, vec![root, keys, left, right, members])
}

#[test]
fn the_revision_is_the_last_key_of_the_key_bucket() {
    let db = etcd_like();
    let facts = inspect(db.as_slice(), db.len() as u64).unwrap();
    assert_eq!(
        facts,
        Facts {
            page_size: SIZE as u32,
            txid: 5,
            revision: Some(53)
        }
    );
}

#[test]
fn a_root_branch_and_an_inline_key_bucket_are_followed() {
    let inline = {
        let mut v = bucket(0);
        v.extend(leaf(0, &[(0, rev(7, 0), b"x".to_vec())], 128));
        v
    };
    let root = branch(3, &[(b"alarm".to_vec(), 4), (b"key".to_vec(), 5)]);
    let left = leaf(4, &[(BUCKET_LEAF, b"alarm".to_vec(), bucket(6))], SIZE);
    let right = leaf(
        5,
        &[
            (BUCKET_LEAF, b"key".to_vec(), inline),
            (BUCKET_LEAF, b"meta".to_vec(), bucket(6)),
        ],
        SIZE,
    );
    let empty = leaf(6, &[], SIZE);
    let db = database(3, vec![root, left, right, empty]);
    assert_eq!(
        inspect(db.as_slice(), db.len() as u64).unwrap().revision,
        Some(7)
    );
}

#[test]
fn an_empty_key_bucket_has_no_revision() {
    let root = leaf(3, &[(BUCKET_LEAF, b"key".to_vec(), bucket(4))], SIZE);
    let db = database(3, vec![root, leaf(4, &[], SIZE)]);
    assert_eq!(
        inspect(db.as_slice(), db.len() as u64).unwrap().revision,
        None
    );
}

#[test]
fn a_torn_meta_page_falls_back_on_the_other() {
    let mut db = etcd_like();
    db[PAGE_HEADER + 20] ^= 0xff; // the first meta's root, under its checksum
    let facts = inspect(db.as_slice(), db.len() as u64).unwrap();
    assert_eq!((facts.txid, facts.revision), (5, Some(53)));
    db[SIZE + PAGE_HEADER + 20] ^= 0xff;
    let err = inspect(db.as_slice(), db.len() as u64).unwrap_err();
    assert!(matches!(err, BoltError::NotBolt(_)), "{err}");
}

#[test]
fn what_is_not_an_etcd_database_is_refused() {
    let db = etcd_like();
    // Truncated: the meta page names more pages than the file has.
    let err = inspect(db.as_slice(), (db.len() - SIZE) as u64).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    // No key bucket.
    let root = leaf(3, &[(BUCKET_LEAF, b"other".to_vec(), bucket(4))], SIZE);
    let other = database(3, vec![root, leaf(4, &[], SIZE)]);
    assert_eq!(
        inspect(other.as_slice(), other.len() as u64),
        Err(BoltError::NoKeyBucket)
    );
    assert!(matches!(
        inspect(&b"hello"[..], 5),
        Err(BoltError::NotBolt(_))
    ));
    // A key bucket pointing at a meta page, and at itself through a branch.
    let root = leaf(3, &[(BUCKET_LEAF, b"key".to_vec(), bucket(1))], SIZE);
    let bad = database(3, vec![root]);
    assert!(matches!(
        inspect(bad.as_slice(), bad.len() as u64),
        Err(BoltError::BadPage { .. })
    ));
    let root = leaf(3, &[(BUCKET_LEAF, b"key".to_vec(), bucket(4))], SIZE);
    let looped = database(3, vec![root, branch(4, &[(rev(1, 0), 4)])]);
    let err = inspect(looped.as_slice(), looped.len() as u64).unwrap_err();
    assert!(err.to_string().contains("levels"), "{err}");
}

#[test]
fn every_corrupted_byte_gives_an_answer_not_a_panic() {
    let db = etcd_like();
    for at in (0..db.len()).step_by(7) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = db.clone();
            bad[at] ^= flip;
            let _ = inspect(bad.as_slice(), bad.len() as u64);
        }
    }
}
