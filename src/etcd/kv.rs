//! Reading raw keys and values from etcd (`POST /v3/kv/range`, paged), as the API server stores
//! them: `boot secrets rotate-key` checks which encryption key each object was written with.
//! Reads only.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::{EtcdClient, EtcdError};

/// Keys per range request: bounds one answer to a few hundred values.
const PAGE: u32 = 200;
/// The largest range answer read: 200 values of at most etcd's 1.5 MiB request limit.
const MAX_PAGE_ANSWER: usize = 320 * 1024 * 1024;

#[derive(serde::Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<KeyValue>,
    #[serde(default)]
    more: bool,
}

#[derive(serde::Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

/// Calls `each(key, value)` for every key under `prefix`, in key order; returns how many.
pub async fn scan(
    client: &EtcdClient,
    prefix: &[u8],
    each: &mut (dyn FnMut(&[u8], &[u8]) + Send),
) -> Result<u64, EtcdError> {
    let range_end = prefix_end(prefix);
    let mut start = prefix.to_vec();
    let mut seen = 0u64;
    loop {
        let body = serde_json::json!({
            "key": BASE64.encode(&start),
            "range_end": BASE64.encode(&range_end),
            "limit": PAGE,
        });
        let page: RangeResponse = client
            .call_bounded("/v3/kv/range", &body, MAX_PAGE_ANSWER)
            .await?;
        let mut last = None;
        for kv in &page.kvs {
            let key = decode(client, &kv.key)?;
            each(&key, &decode(client, &kv.value)?);
            seen += 1;
            last = Some(key);
        }
        match last {
            Some(mut key) if page.more => {
                key.push(0);
                start = key;
            }
            _ => return Ok(seen),
        }
    }
}

fn decode(client: &EtcdClient, text: &str) -> Result<Vec<u8>, EtcdError> {
    BASE64.decode(text).map_err(|e| EtcdError::BadAnswer {
        endpoint: client
            .endpoints()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
        reason: format!("/v3/kv/range: {e}"),
    })
}

/// The end of etcd's range for `prefix`: the prefix with its last byte incremented.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_past_its_last_key() {
        assert_eq!(prefix_end(b"/registry/secrets/"), b"/registry/secrets0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
