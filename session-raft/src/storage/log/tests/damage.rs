//! Tests of what the log does with a damaged or incomplete data directory:
//! torn and garbled tails cut off, damage in the middle refused, a write
//! batch kept or cut whole, undecodable or hostile records refused, a
//! half-created segment removed.

use super::*;
use crate::storage::log::recovery::segment_name;

#[tokio::test]
async fn a_torn_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        append_each(&mut log, 1..=10).await;
    }
    let path = last_segment(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 5).unwrap();
    drop(file);
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut log).await, (1..=9).collect::<Vec<_>>());
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(log_id(9))
    );
    append_each(&mut log, 10..=11).await;
    drop(log);
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut log).await, (1..=11).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_garbled_or_extended_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        append_each(&mut log, 1..=10).await;
    }
    let path = last_segment(dir.path());
    let good = std::fs::read(&path).unwrap();
    // Garbage or zeros after the last record (a file extended by a write
    // that never landed) cost nothing.
    for tail in [vec![0u8; 4096], b"RSwl\xff\xff\x00\x00garbage".to_vec()] {
        let mut bytes = good.clone();
        bytes.extend_from_slice(&tail);
        std::fs::write(&path, &bytes).unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, (1..=10).collect::<Vec<_>>());
        drop(log);
        assert_eq!(std::fs::read(&path).unwrap(), good, "the tail was cut off");
    }
    // Garbage over the last record's body: only that record goes.
    let mut bytes = good.clone();
    let n = bytes.len();
    bytes[n - 12..].copy_from_slice(&[0xa5; 12]);
    std::fs::write(&path, &bytes).unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut log).await, (1..=9).collect::<Vec<_>>());
}

#[tokio::test]
async fn damage_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        append_each(&mut log, 1..=10).await;
    }
    let path = last_segment(dir.path());
    let good = std::fs::read(&path).unwrap();
    let data = scan(&good, 1, None).unwrap();
    let fifth = &data.frames[5];
    // A flipped bit in entry 5's body, and a length field of entry 5
    // claiming more than the file has: followed by valid records of later
    // writes, neither may be taken for a torn end.
    let mut flipped = good.clone();
    flipped[fifth.body.start + 3] ^= 0x01;
    let mut long = good.clone();
    long[fifth.offset + 4..fifth.offset + 8].copy_from_slice(&(1u32 << 20).to_le_bytes());
    for bytes in [flipped, long] {
        std::fs::write(&path, &bytes).unwrap();
        let error = LogStore::open(dir.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let message = error.to_string();
        assert!(message.contains("damaged in the middle"), "{message}");
        assert!(message.contains(path.to_str().unwrap()), "{message}");
        assert!(
            message.contains(&format!("offset {}", fifth.offset)),
            "{message}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
    }
}

/// Segment bytes: the state record (batch 0), then `batches` of entries.
fn segment_bytes(batches: &[&[u64]]) -> Vec<u8> {
    let state = SegmentState {
        format: FORMAT,
        vote: None,
        committed: None,
        purged: None,
        last: None,
    };
    let mut out = Vec::new();
    frame::write_frame(
        &mut out,
        1,
        0,
        true,
        &frame::encode(&Record::State(state)).unwrap(),
    );
    for (b, indexes) in batches.iter().enumerate() {
        for (k, i) in indexes.iter().enumerate() {
            let body = frame::encode_entry(&entry(*i, 8)).unwrap();
            frame::write_frame(&mut out, 1, b as u32 + 1, k + 1 == indexes.len(), &body);
        }
    }
    out
}

#[test]
fn a_write_batch_is_kept_or_cut_whole() {
    let data = segment_bytes(&[&[1, 2, 3], &[4, 5, 6]]);
    let whole = scan(&data, 1, None).unwrap();
    assert!(whole.damage.is_none());
    assert_eq!(whole.frames.len(), 7);
    let second = whole.frames[4].offset;
    let fifth = whole.frames[5].clone();

    // Entry 5 damaged (or the file ending inside the batch): the batch is
    // the last one, so it is the torn write, and it goes whole.
    let mut torn = data.clone();
    torn[fifth.body.start] ^= 0xff;
    let scanned = scan(&torn, 1, None).unwrap();
    assert_eq!(scanned.complete, second, "cut back to the end of batch 1");
    let (at, _, batch) = scanned.damage.clone().unwrap();
    assert_eq!(at, fifth.offset);
    assert_eq!(
        later_write(&torn, at, 1, batch),
        None,
        "entry 6 is of the same batch"
    );
    let short = scan(&data[..data.len() - 1], 1, None).unwrap();
    assert_eq!(short.complete, second);

    // Entry 2 damaged: batch 2 was written after batch 1 was synced.
    let mut middle = data.clone();
    middle[whole.frames[2].body.start] ^= 0xff;
    let scanned = scan(&middle, 1, None).unwrap();
    let (at, _, batch) = scanned.damage.unwrap();
    assert_eq!(later_write(&middle, at, 1, batch), Some(second));

    // A frame copied from another segment does not check out there.
    assert!(scan(&data, 2, None).unwrap().damage.is_some());
}

#[tokio::test]
async fn a_record_that_checks_out_but_does_not_decode_is_invalid_data() {
    let dir = tempfile::tempdir().unwrap();
    drop(LogStore::open(dir.path()).unwrap());
    let path = last_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let batch = scan(&bytes, 1, None).unwrap().next_batch.unwrap();
    frame::write_frame(
        &mut bytes,
        1,
        batch,
        true,
        &[frame::ENTRY, 0xff, 0xff, 0xff],
    );
    std::fs::write(&path, &bytes).unwrap();
    let error = LogStore::open(dir.path()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("does not decode"), "{error}");
}

#[test]
fn a_stored_entry_claiming_a_huge_key_is_refused_without_allocating() {
    let mut changes = ChangeSet::default();
    changes.set("kkkkkkkkkkkkkkkk".into(), vec![1]);
    let entry = Entry {
        log_id: log_id(5),
        payload: EntryPayload::Normal(std::sync::Arc::new(Command::Apply {
            id: SessionId::generate(None).unwrap(),
            changes,
            now: 1,
        })),
    };
    let mut bytes = frame::encode_entry(&entry).unwrap();
    assert!(frame::decode_entry(&bytes).is_ok());
    // The key's length prefix (16) now claims 128 MiB.
    let key = b"\x10kkkkkkkkkkkkkkkk";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    let mut claim = vec![0xfd];
    claim.extend_from_slice(&(1u64 << 27).to_le_bytes());
    bytes.splice(at..at + 1, claim);
    let refused = frame::decode_entry(&bytes).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
    assert!(refused.to_string().contains("LimitExceeded"), "{refused}");
}

#[tokio::test]
async fn a_segment_whose_creation_was_cut_short_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        append_each(&mut log, 1..=3).await;
    }
    let next = dir.path().join(segment_name(2));
    std::fs::write(&next, &b"RSwl\x10\x00"[..]).unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    assert!(!next.exists());
    assert_eq!(indexes(&mut log).await, vec![1, 2, 3]);
}
