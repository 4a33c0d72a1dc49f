//! Keeps every AppendEntries body within the receiver's body limit.
//!
//! openraft batches up to `max_payload_entries` (300) entries into one
//! AppendEntries, whatever their size, while the receiver refuses a body over
//! `max_rpc_bytes` with `413`. A batch of large sessions would then be
//! refused, resent unchanged and refused again forever: commit stops. So the
//! network splits an oversized request into consecutive parts, each within
//! the limit, sends them in order and tells openraft how far the follower got
//! (openraft allows a network to report a prefix as
//! [`AppendEntriesResponse::PartialSuccess`]).

use openraft::errors::{NetworkError, RPCError};

use crate::bincode_limit;
use crate::types::{AppendEntriesRequest, AppendEntriesResponse, Entry, LogId, TypeConfig};

/// Room left in a body for what surrounds the entries (message tag, vote,
/// previous and committed log ids, the entries' count): far more than they
/// take, so that a part never crosses the limit by a few bytes.
pub(crate) const ENVELOPE_BYTES: usize = 4096;

/// Encoded size of one entry, as it appears inside a request body.
fn encoded_len(entry: &Entry) -> usize {
    bincode::serde::encode_into_std_write(
        entry,
        &mut std::io::sink(),
        bincode_limit::encode_config(),
    )
    .unwrap_or(usize::MAX)
}

/// `request` as one or more requests whose bodies each fit `max_body_bytes`,
/// in log order, each continuing where the previous one ends. A single entry
/// larger than the limit still goes alone, and is refused by the receiver:
/// no split can deliver it, so that is logged for the operator to raise
/// `max_rpc_bytes` (or lower the session size limit).
pub(crate) fn split(
    request: AppendEntriesRequest,
    max_body_bytes: usize,
) -> Vec<AppendEntriesRequest> {
    let budget = max_body_bytes.saturating_sub(ENVELOPE_BYTES).max(1);
    let sizes: Vec<usize> = request.entries.iter().map(encoded_len).collect();
    if sizes
        .iter()
        .fold(0usize, |sum, size| sum.saturating_add(*size))
        <= budget
    {
        return vec![request];
    }
    let AppendEntriesRequest {
        vote,
        prev_log_id,
        leader_commit,
        entries,
    } = request;
    let mut parts = Vec::new();
    let mut prev = prev_log_id;
    let mut part: Vec<Entry> = Vec::new();
    let mut part_bytes = 0usize;
    let mut finish = |part: &mut Vec<Entry>, prev: &mut Option<LogId>| {
        let entries = std::mem::take(part);
        let next_prev = entries.last().map(|entry| entry.log_id);
        parts.push(AppendEntriesRequest {
            vote,
            prev_log_id: *prev,
            // The follower commits no further than what it holds and has
            // matched, so each part can carry the leader's commit as is.
            leader_commit,
            entries,
        });
        *prev = next_prev;
    };
    for (entry, size) in entries.into_iter().zip(sizes) {
        if size > budget {
            tracing::error!(
                index = entry.log_id.index,
                size,
                max_rpc_bytes = max_body_bytes,
                "a log entry is larger than the RPC body limit: followers refuse it \
                 until max_rpc_bytes is raised on every member"
            );
        }
        if !part.is_empty() && part_bytes.saturating_add(size) > budget {
            finish(&mut part, &mut prev);
            part_bytes = 0;
        }
        part_bytes = part_bytes.saturating_add(size);
        part.push(entry);
    }
    if !part.is_empty() {
        finish(&mut part, &mut prev);
    }
    parts
}

/// Sends `parts` (from [`split`]) in order through `send` and folds the
/// answers into the one answer openraft expects for the whole request.
pub(crate) async fn send_parts<F, Fut>(
    parts: Vec<AppendEntriesRequest>,
    mut send: F,
) -> Result<AppendEntriesResponse, RPCError<TypeConfig>>
where
    F: FnMut(AppendEntriesRequest) -> Fut,
    Fut: std::future::Future<Output = Result<AppendEntriesResponse, RPCError<TypeConfig>>>,
{
    // The last log id the follower is known to hold, once a part succeeded.
    let mut matched: Option<Option<LogId>> = None;
    for part in parts {
        let last = part
            .entries
            .last()
            .map(|entry| entry.log_id)
            .or(part.prev_log_id);
        let answer = send(part).await;
        match (answer, matched) {
            (Ok(AppendEntriesResponse::Success), _) => matched = Some(last),
            // Answers of the first part are openraft's answers for the
            // whole request: nothing of it is known to have arrived.
            (answer, None) => return answer,
            (Ok(AppendEntriesResponse::PartialSuccess(upto)), Some(_)) => {
                return Ok(AppendEntriesResponse::PartialSuccess(upto))
            }
            (Ok(AppendEntriesResponse::HigherVote(vote)), Some(_)) => {
                return Ok(AppendEntriesResponse::HigherVote(vote))
            }
            // The follower just matched this part's start, so a conflict
            // means its log changed under us: let openraft probe again
            // rather than report a match below one it already has.
            (Ok(AppendEntriesResponse::Conflict), Some(_)) => {
                return Err(RPCError::Network(NetworkError::from_string(
                    "follower's log changed during a split append",
                )))
            }
            // Earlier parts arrived: report them, so that the next attempt
            // starts after them instead of resending them.
            (Err(_), Some(upto)) => return Ok(AppendEntriesResponse::PartialSuccess(upto)),
        }
    }
    Ok(AppendEntriesResponse::Success)
}

#[cfg(test)]
mod tests {
    use session_core::{ChangeSet, SessionId};

    use super::*;
    use crate::command::Command;

    fn entry(index: u64, value_bytes: usize) -> Entry {
        let mut changes = ChangeSet::default();
        changes.set("k".into(), vec![7; value_bytes]);
        Entry {
            log_id: openraft::testing::log_id::<TypeConfig>(1, 1, index),
            payload: openraft::EntryPayload::Normal(std::sync::Arc::new(Command::Apply {
                id: SessionId::generate(None).unwrap(),
                changes,
                now: 1,
            })),
        }
    }

    fn request(entries: Vec<Entry>) -> AppendEntriesRequest {
        AppendEntriesRequest {
            vote: crate::types::Vote::new_committed(1, 1),
            prev_log_id: Some(openraft::testing::log_id::<TypeConfig>(1, 1, 9)),
            leader_commit: None,
            entries,
        }
    }

    #[test]
    fn oversized_requests_split_into_consecutive_parts_within_the_limit() {
        let limit = 64 << 10;
        let small = split(request((10..13).map(|i| entry(i, 100)).collect()), limit);
        assert_eq!(small.len(), 1, "a request within the limit is unchanged");
        let parts = split(request((10..40).map(|i| entry(i, 10_000)).collect()), limit);
        assert!(parts.len() > 1);
        let mut prev = Some(openraft::testing::log_id::<TypeConfig>(1, 1, 9));
        let mut next_index = 10;
        for part in &parts {
            assert_eq!(part.prev_log_id, prev);
            let body =
                crate::rpc::encode(&crate::rpc::Request::AppendEntries(part.clone())).unwrap();
            assert!(body.len() <= limit, "{} bytes", body.len());
            for entry in &part.entries {
                assert_eq!(entry.log_id.index, next_index);
                next_index += 1;
            }
            prev = part.entries.last().map(|e| e.log_id);
        }
        assert_eq!(next_index, 40);
        // An entry over the limit alone still goes, alone.
        let lone = split(
            request(vec![entry(10, 1_000), entry(11, 100_000), entry(12, 1_000)]),
            limit,
        );
        let lengths: Vec<usize> = lone.iter().map(|part| part.entries.len()).collect();
        assert_eq!(lengths, [1, 1, 1]);
    }

    #[tokio::test]
    async fn answers_fold_into_one() {
        let parts = || {
            split(
                request((10..40).map(|i| entry(i, 10_000)).collect()),
                64 << 10,
            )
        };
        let first_last = parts()[0].entries.last().unwrap().log_id;
        let all_ok = send_parts(parts(), |_| async { Ok(AppendEntriesResponse::Success) }).await;
        assert_eq!(all_ok.unwrap(), AppendEntriesResponse::Success);
        let first_conflicts =
            send_parts(parts(), |_| async { Ok(AppendEntriesResponse::Conflict) }).await;
        assert_eq!(first_conflicts.unwrap(), AppendEntriesResponse::Conflict);
        let mut sent = 0;
        let second_fails = send_parts(parts(), |_| {
            sent += 1;
            let ok = sent == 1;
            async move {
                if ok {
                    Ok(AppendEntriesResponse::Success)
                } else {
                    Err(RPCError::Network(NetworkError::from_string("cut")))
                }
            }
        })
        .await;
        assert_eq!(
            second_fails.unwrap(),
            AppendEntriesResponse::PartialSuccess(Some(first_last))
        );
    }
}
