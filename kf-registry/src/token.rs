//! `nextPageToken`: an opaque, tamper-evident keyset position.
//!
//! A token is `hex(payload ‖ tag)`: the payload holds the order, the
//! direction, the last row's sort key and id, and a fingerprint of the query
//! it belongs to; the tag is the first 16 bytes of HMAC-SHA-256 over the
//! payload with the store's secret key. A token that was edited, forged,
//! truncated or re-sent with a different filter, scope or order fails the
//! check and is an [`Error::PageToken`] (HTTP 400). Tokens never reach SQL:
//! only the two integers inside a verified token do, as bound parameters.

use sha2::{Digest, Sha256};

use crate::query::{Cursor, OrderBy, SortOrder};
use crate::{Error, Result};

const VERSION: u8 = 1;
const PAYLOAD: usize = 1 + 1 + 1 + 8 + 8 + 8;
const TAG: usize = 16;

/// HMAC-SHA-256 (RFC 2104). O(message length).
pub fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A digest of everything that must stay the same between pages of one walk.
pub fn fingerprint(parts: &[&str]) -> [u8; 8] {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Signs a cursor for the query with this fingerprint.
///
/// ```
/// use kf_registry::query::{Cursor, OrderBy, SortOrder};
/// use kf_registry::token::{sign, verify};
///
/// let key = [7u8; 32];
/// let fp = [1u8; 8];
/// let cursor = Cursor { key: 1700000000000, id: 42 };
/// let token = sign(&key, fp, OrderBy::CreateTime, SortOrder::Desc, cursor);
/// assert_eq!(verify(&key, fp, OrderBy::CreateTime, SortOrder::Desc, &token)?, cursor);
/// assert!(verify(&key, [2u8; 8], OrderBy::CreateTime, SortOrder::Desc, &token).is_err());
/// # Ok::<(), kf_registry::Error>(())
/// ```
pub fn sign(key: &[u8; 32], fingerprint: [u8; 8], order: OrderBy, sort: SortOrder, cursor: Cursor) -> String {
    let mut bytes = Vec::with_capacity(PAYLOAD + TAG);
    bytes.push(VERSION);
    bytes.push(order.code());
    bytes.push(u8::from(sort == SortOrder::Desc));
    bytes.extend_from_slice(&cursor.key.to_be_bytes());
    bytes.extend_from_slice(&cursor.id.to_be_bytes());
    bytes.extend_from_slice(&fingerprint);
    let tag = hmac_sha256(key, &bytes);
    bytes.extend_from_slice(&tag[..TAG]);
    hex::encode(bytes)
}

/// Checks a token and returns its cursor. Constant-time tag comparison.
pub fn verify(key: &[u8; 32], fingerprint: [u8; 8], order: OrderBy, sort: SortOrder, token: &str) -> Result<Cursor> {
    let bad =
        |why: &str| Error::PageToken(format!("{why}; pass back the nextPageToken of the previous page unchanged"));
    if token.len() != 2 * (PAYLOAD + TAG) {
        return Err(bad("not a token issued by this registry"));
    }
    let bytes = hex::decode(token).map_err(|_| bad("not a token issued by this registry"))?;
    let (payload, tag) = bytes.split_at(PAYLOAD);
    let expected = hmac_sha256(key, payload);
    let diff = expected[..TAG].iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(bad("signature mismatch (edited, forged or from another registry)"));
    }
    if payload[0] != VERSION
        || payload[1] != order.code()
        || payload[2] != u8::from(sort == SortOrder::Desc)
        || payload[19..27] != fingerprint
    {
        return Err(bad("the token belongs to a list with another filter, scope, orderBy or sortOrder"));
    }
    let int = |range: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[range]);
        i64::from_be_bytes(b)
    };
    Ok(Cursor { key: int(3..11), id: int(11..19) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hmac_matches_rfc_4231_shape() {
        // RFC 4231 test case 2 uses a short key; ours are always 32 bytes, so
        // check against a value computed independently (Python hmac module).
        let key = [0x0bu8; 32];
        let tag = hmac_sha256(&key, b"Hi There");
        assert_eq!(hex::encode(tag), "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7");
    }

    proptest! {
        #[test]
        fn every_single_byte_edit_is_rejected(k in any::<i64>(), id in any::<i64>(), at in 0usize..86, nibble in 0u8..16) {
            let key = [3u8; 32];
            let fp = [9u8; 8];
            let token = sign(&key, fp, OrderBy::Id, SortOrder::Asc, Cursor { key: k, id });
            let mut chars: Vec<char> = token.chars().collect();
            let replacement = char::from_digit(u32::from(nibble), 16).unwrap();
            prop_assume!(chars[at] != replacement);
            chars[at] = replacement;
            let edited: String = chars.into_iter().collect();
            prop_assert!(verify(&key, fp, OrderBy::Id, SortOrder::Asc, &edited).is_err());
            prop_assert_eq!(verify(&key, fp, OrderBy::Id, SortOrder::Asc, &token).unwrap(), Cursor { key: k, id });
        }

        #[test]
        fn garbage_never_panics(text in "\\PC{0,100}") {
            prop_assert!(verify(&[0u8; 32], [0u8; 8], OrderBy::Id, SortOrder::Asc, &text).is_err());
        }
    }
}
