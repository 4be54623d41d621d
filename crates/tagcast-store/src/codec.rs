//! Compact byte encodings of the variable-length values in the store.
//!
//! Values written by this module are only ever read back by it, so bytes that do not decode mean
//! a corrupted file (or a bug that wrote them): every decoder says so with a `DecodeError`, which
//! the caller turns into `StoreError::Corrupt` naming the record. Nothing is read as a default.

use roaring::RoaringBitmap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tagcast_audience::Change;

use crate::events::Event;
use crate::schema::{ATTR_SLOTS, AttrSchema, AttrSlot};
use crate::tables::Callback;
use crate::tasks::TaskMeta;
use crate::{Device, StoreError};

/// What is wrong with some stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub String);

impl DecodeError {
    /// The corruption of `what` stored at `key` (logged at error level).
    pub fn at(self, what: &'static str, key: impl std::fmt::Debug) -> StoreError {
        StoreError::corrupt(what, key, self.0)
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tag ids as consecutive little-endian u32s.
pub(crate) fn encode_tag_ids(ids: &[u32]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

pub(crate) fn decode_tag_ids(bytes: &[u8]) -> Result<Vec<u32>, DecodeError> {
    Ok(tag_ids_in(bytes)?.collect())
}

/// The tag ids without collecting them (index rebuilds read millions).
pub(crate) fn tag_ids_in(bytes: &[u8]) -> Result<impl Iterator<Item = u32> + '_, DecodeError> {
    let ids = bytes.chunks_exact(4);
    if !ids.remainder().is_empty() {
        return Err(DecodeError(format!(
            "{} bytes is not a whole number of 4-byte tag ids",
            bytes.len()
        )));
    }
    Ok(ids.map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
}

/// Attribute values as repeated `slot:u8 len:u16le bytes`, in slot order.
pub(crate) fn encode_attrs(values: &[(u8, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (slot, value) in values {
        out.push(*slot);
        put_str(&mut out, value);
    }
    out
}

pub(crate) fn decode_attrs(bytes: &[u8]) -> Result<Vec<(u8, String)>, DecodeError> {
    attrs_in(bytes)
        .map(|attr| attr.map(|(slot, value)| (slot, value.to_string())))
        .collect()
}

/// The attribute values without copying them (index rebuilds read millions); the first bad
/// entry ends the iteration with its error.
pub(crate) fn attrs_in(bytes: &[u8]) -> impl Iterator<Item = Result<(u8, &str), DecodeError>> {
    let mut reader = Reader(bytes);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || reader.0.is_empty() {
            return None;
        }
        let attr = reader.slot().and_then(|slot| Ok((slot, reader.str()?)));
        failed = attr.is_err();
        Some(attr)
    })
}

/// Attribute slots as repeated `slot:u8 account_type:u8 len:u16le name`.
pub(crate) fn encode_schema(schema: &AttrSchema) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, slot) in schema.named() {
        out.push(index);
        out.push(slot.account_type);
        put_str(&mut out, &slot.name);
    }
    out
}

pub(crate) fn decode_schema(bytes: &[u8]) -> Result<AttrSchema, DecodeError> {
    let mut reader = Reader(bytes);
    let mut schema = AttrSchema::default();
    while !reader.0.is_empty() {
        let index = reader.slot()?;
        let account_type = reader.byte()?;
        let name = reader.str()?;
        schema.slots[index as usize] = Some(AttrSlot {
            name: name.to_string(),
            account_type,
        });
    }
    Ok(schema)
}

/// A task's metadata as JSON.
pub(crate) fn encode_meta(meta: &TaskMeta) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(meta)
        .map_err(|e| StoreError::Storage(format!("cannot encode push task {}: {e}", meta.task_id)))
}

pub(crate) fn decode_meta(bytes: &[u8]) -> Result<TaskMeta, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError(format!("not a push task: {e}")))
}

/// A set of account ids in roaring's portable format.
pub(crate) fn encode_bitmap(bitmap: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(bitmap.serialized_size());
    // Writing into a Vec cannot fail.
    let _ = bitmap.serialize_into(&mut out);
    out
}

pub(crate) fn decode_bitmap(bytes: &[u8]) -> Result<RoaringBitmap, DecodeError> {
    let bitmap = RoaringBitmap::deserialize_from(bytes)
        .map_err(|e| DecodeError(format!("not a roaring bitmap: {e}")))?;
    if bitmap.serialized_size() != bytes.len() {
        return Err(DecodeError(format!(
            "a roaring bitmap of {} bytes followed by {} more",
            bitmap.serialized_size(),
            bytes.len().saturating_sub(bitmap.serialized_size())
        )));
    }
    Ok(bitmap)
}

/// A record kept as JSON (a device, a fan-out, an account's sends): `what` names it in errors.
pub(crate) fn encode_json<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Storage(format!("encode {what}: {e}")))
}

pub(crate) fn decode_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError(format!("not a {what}: {e}")))
}

pub(crate) fn encode_device(device: &Device) -> Result<Vec<u8>, StoreError> {
    encode_json("device", device)
}

pub(crate) fn decode_device(bytes: &[u8]) -> Result<Device, DecodeError> {
    decode_json("device", bytes)
}

/// A waiting callback batch as `attempts:u32le next_attempt_ms:u64le body`.
pub(crate) fn encode_callback(callback: &Callback) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + callback.body.len());
    out.extend_from_slice(&callback.attempts.to_le_bytes());
    out.extend_from_slice(&callback.next_attempt_ms.to_le_bytes());
    out.extend_from_slice(callback.body.as_bytes());
    out
}

pub(crate) fn decode_callback(bytes: &[u8]) -> Result<Callback, DecodeError> {
    let mut reader = Reader(bytes);
    let attempts = reader.u32()?;
    let next_attempt_ms = reader.u64()?;
    let body = std::str::from_utf8(reader.0)
        .map_err(|e| DecodeError(format!("not UTF-8: {e}")))?
        .to_string();
    Ok(Callback {
        body,
        attempts,
        next_attempt_ms,
    })
}

/// One change-log entry: its audience changes as repeated `kind:u8 account:u32le ...` (see each
/// kind), then its events as `kind:u8 ...` with kinds from 16.
pub(crate) fn encode_entry<'a>(
    changes: impl IntoIterator<Item = &'a Change>,
    events: impl IntoIterator<Item = &'a Event>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for change in changes {
        put_change(&mut out, change);
    }
    for event in events {
        put_event(&mut out, event);
    }
    out
}

fn put_change(out: &mut Vec<u8>, change: &Change) {
    match change {
        Change::AccountAdded(account) => put_account(out, 0, *account),
        Change::AccountRemoved(account) => put_account(out, 1, *account),
        Change::TagAdded { account, tag } => {
            put_account(out, 2, *account);
            put_str(out, tag);
        }
        Change::TagRemoved { account, tag } => {
            put_account(out, 3, *account);
            put_str(out, tag);
        }
        Change::AttrSet {
            account,
            slot,
            old,
            new,
        } => {
            put_account(out, if old.is_some() { 5 } else { 4 }, *account);
            out.push(*slot);
            if let Some(old) = old {
                put_str(out, old);
            }
            put_str(out, new);
        }
        Change::AttrRemoved { account, slot, old } => {
            put_account(out, 6, *account);
            out.push(*slot);
            put_str(out, old);
        }
    }
}

fn put_event(out: &mut Vec<u8>, event: &Event) {
    match event {
        Event::TaskCreated(seq) => {
            out.push(16);
            out.extend_from_slice(&seq.to_le_bytes());
        }
        Event::TaskRevoked(seq) => {
            out.push(17);
            out.extend_from_slice(&seq.to_le_bytes());
        }
        Event::Login { account, session } => {
            put_account(out, 18, *account);
            out.extend_from_slice(&session.to_le_bytes());
        }
    }
}

/// The audience changes and the events of a change-log entry.
pub(crate) fn decode_entry(bytes: &[u8]) -> Result<(Vec<Change>, Vec<Event>), DecodeError> {
    let mut reader = Reader(bytes);
    let mut changes = Vec::new();
    let mut events = Vec::new();
    while !reader.0.is_empty() {
        match reader.byte()? {
            16 => events.push(Event::TaskCreated(reader.u64()?)),
            17 => events.push(Event::TaskRevoked(reader.u64()?)),
            18 => {
                let account = reader.u32()?;
                let session = reader.u64()?;
                events.push(Event::Login { account, session });
            }
            kind => changes.push(reader.change(kind)?),
        }
    }
    Ok((changes, events))
}

fn put_account(out: &mut Vec<u8>, kind: u8, account: u32) {
    out.push(kind);
    out.extend_from_slice(&account.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// The rest of an audience change of `kind`, after its kind byte.
    fn change(&mut self, kind: u8) -> Result<Change, DecodeError> {
        let account = self.u32()?;
        Ok(match kind {
            0 => Change::AccountAdded(account),
            1 => Change::AccountRemoved(account),
            2 | 3 => {
                let tag = self.str()?.to_string();
                if kind == 2 {
                    Change::TagAdded { account, tag }
                } else {
                    Change::TagRemoved { account, tag }
                }
            }
            4 | 5 => {
                let slot = self.slot()?;
                let old = if kind == 5 {
                    Some(self.str()?.to_string())
                } else {
                    None
                };
                let new = self.str()?.to_string();
                Change::AttrSet {
                    account,
                    slot,
                    old,
                    new,
                }
            }
            6 => {
                let slot = self.slot()?;
                let old = self.str()?.to_string();
                Change::AttrRemoved { account, slot, old }
            }
            other => return Err(DecodeError(format!("unknown change kind {other}"))),
        })
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (bytes, rest) = self.0.split_first_chunk::<N>().ok_or_else(|| {
            DecodeError(format!(
                "truncated: {N} bytes expected, {} left",
                self.0.len()
            ))
        })?;
        self.0 = rest;
        Ok(*bytes)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self
            .0
            .split_first()
            .ok_or_else(|| DecodeError("truncated: a byte is missing".into()))?;
        self.0 = rest;
        Ok(b)
    }

    fn slot(&mut self) -> Result<u8, DecodeError> {
        let slot = self.byte()?;
        if slot as usize >= ATTR_SLOTS {
            return Err(DecodeError(format!(
                "attribute slot {slot} is not one of 0 to {}",
                ATTR_SLOTS - 1
            )));
        }
        Ok(slot)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = u16::from_le_bytes([self.byte()?, self.byte()?]) as usize;
        let bytes = self.0.get(..len).ok_or_else(|| {
            DecodeError(format!(
                "truncated: a {len}-byte string has only {} bytes",
                self.0.len()
            ))
        })?;
        self.0 = &self.0[len..];
        std::str::from_utf8(bytes).map_err(|e| DecodeError(format!("not UTF-8: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskKind;

    fn schema() -> AttrSchema {
        let mut schema = AttrSchema::default();
        schema.slots[1] = Some(AttrSlot {
            name: "city".into(),
            account_type: 0,
        });
        schema.slots[9] = Some(AttrSlot {
            name: "os".into(),
            account_type: 1,
        });
        schema
    }

    fn meta() -> TaskMeta {
        TaskMeta {
            task_id: "t".into(),
            seq: 1,
            kind: TaskKind::Tag,
            from_account: "admin".into(),
            msg_random: 7,
            content: "{}".into(),
            created_ms: 1,
            expires_ms: 2,
            data_id: None,
            has_offline_push_info: false,
            notify_devices: false,
            revoked_ms: None,
            audience_size: 3,
        }
    }

    #[track_caller]
    fn fails<T: std::fmt::Debug>(result: Result<T, DecodeError>, mentions: &str) {
        let error = result.expect_err("corrupt bytes must not decode");
        assert!(
            error.0.contains(mentions),
            "{error} should mention {mentions}"
        );
    }

    #[test]
    fn entries_roundtrip_and_truncation_is_corrupt() {
        let changes = vec![
            Change::AccountAdded(7),
            Change::TagAdded {
                account: 7,
                tag: "深圳".into(),
            },
            Change::AttrSet {
                account: u32::MAX,
                slot: 9,
                old: None,
                new: "a".into(),
            },
            Change::AttrSet {
                account: 1,
                slot: 0,
                old: Some(String::new()),
                new: "b".into(),
            },
            Change::AttrRemoved {
                account: 1,
                slot: 3,
                old: "c".into(),
            },
            Change::TagRemoved {
                account: 7,
                tag: "x".into(),
            },
            Change::AccountRemoved(7),
        ];
        let events = vec![
            Event::TaskCreated(u64::MAX),
            Event::Login {
                account: 3,
                session: 1 << 40,
            },
            Event::TaskRevoked(2),
        ];
        let bytes = encode_entry(&changes, &events);
        assert_eq!(decode_entry(&bytes).unwrap(), (changes, events));
        fails(decode_entry(&bytes[..bytes.len() - 1]), "truncated");
        fails(decode_entry(&[9, 0, 0, 0, 0]), "unknown change kind 9");
        fails(decode_entry(&[16, 0, 0]), "truncated");
    }

    #[test]
    fn callbacks_roundtrip_and_truncation_is_corrupt() {
        let callback = Callback {
            body: "events of 深圳".into(),
            attempts: 3,
            next_attempt_ms: u64::MAX - 1,
        };
        let bytes = encode_callback(&callback);
        assert_eq!(decode_callback(&bytes).unwrap(), callback);
        fails(decode_callback(&bytes[..11]), "truncated");
        fails(decode_callback(&bytes[..bytes.len() - 1]), "UTF-8");
    }

    #[test]
    fn tag_ids_roundtrip() {
        let ids = vec![0, 7, u32::MAX, 42];
        assert_eq!(decode_tag_ids(&encode_tag_ids(&ids)).unwrap(), ids);
        assert_eq!(decode_tag_ids(&[]).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn truncated_tag_ids_are_corrupt() {
        let bytes = encode_tag_ids(&[1, 2]);
        fails(decode_tag_ids(&bytes[..7]), "7 bytes");
        assert!(tag_ids_in(&bytes[..1]).is_err());
    }

    #[test]
    fn attrs_roundtrip() {
        let values = vec![
            (0, "male".to_string()),
            (9, "深圳".to_string()),
            (3, String::new()),
        ];
        assert_eq!(decode_attrs(&encode_attrs(&values)).unwrap(), values);
        assert_eq!(decode_attrs(&[]).unwrap(), vec![]);
    }

    #[test]
    fn corrupt_attrs_are_reported() {
        let bytes = encode_attrs(&[(1, "shenzhen".to_string()), (2, "x".to_string())]);
        // Cut inside the first value, inside the second length, right after a slot.
        fails(decode_attrs(&bytes[..5]), "truncated");
        fails(decode_attrs(&bytes[..bytes.len() - 2]), "truncated");
        fails(decode_attrs(&bytes[..12]), "truncated");
        // A slot past the last one.
        let mut bad_slot = bytes.clone();
        bad_slot[0] = 10;
        fails(decode_attrs(&bad_slot), "slot 10");
        // Invalid UTF-8 in a value.
        let mut bad_utf8 = bytes.clone();
        bad_utf8[3] = 0xff;
        fails(decode_attrs(&bad_utf8), "UTF-8");
        // The copy-free iterator reports the same and then stops.
        let mut items = attrs_in(&bad_utf8);
        assert!(items.next().unwrap().is_err());
        assert!(items.next().is_none());
    }

    #[test]
    fn schema_roundtrip() {
        let schema = schema();
        assert_eq!(decode_schema(&encode_schema(&schema)).unwrap(), schema);
        assert_eq!(decode_schema(&[]).unwrap(), AttrSchema::default());
    }

    #[test]
    fn corrupt_schemas_are_reported() {
        let bytes = encode_schema(&schema());
        fails(decode_schema(&bytes[..1]), "truncated");
        fails(decode_schema(&bytes[..4]), "truncated");
        fails(decode_schema(&bytes[..bytes.len() - 1]), "truncated");
        let mut bad_slot = bytes.clone();
        bad_slot[0] = 200;
        fails(decode_schema(&bad_slot), "slot 200");
        let mut bad_utf8 = bytes.clone();
        bad_utf8[4] = 0xc3;
        fails(decode_schema(&bad_utf8), "UTF-8");
    }

    #[test]
    fn task_meta_roundtrip_and_bad_json() {
        let bytes = encode_meta(&meta()).unwrap();
        assert_eq!(decode_meta(&bytes).unwrap(), meta());
        fails(decode_meta(&bytes[..bytes.len() / 2]), "not a push task");
        fails(decode_meta(b"{\"task_id\":\"t\"}"), "missing field");
        fails(decode_meta(b"\xff\xfe"), "not a push task");
        fails(decode_meta(b""), "not a push task");
    }

    #[test]
    fn bitmaps_roundtrip_and_bad_bitmaps_are_reported() {
        let bitmap: RoaringBitmap = [1, 5, 70_000, 1 << 30].into_iter().collect();
        let bytes = encode_bitmap(&bitmap);
        assert_eq!(decode_bitmap(&bytes).unwrap(), bitmap);
        assert_eq!(
            decode_bitmap(&encode_bitmap(&RoaringBitmap::new())).unwrap(),
            RoaringBitmap::new()
        );
        fails(
            decode_bitmap(&bytes[..bytes.len() - 1]),
            "not a roaring bitmap",
        );
        fails(decode_bitmap(b""), "not a roaring bitmap");
        fails(decode_bitmap(b"garbage!"), "not a roaring bitmap");
        let mut trailing = bytes.clone();
        trailing.push(0);
        fails(decode_bitmap(&trailing), "followed by 1 more");
    }

    #[test]
    fn corruption_becomes_a_store_error_naming_the_record() {
        let error = decode_tag_ids(&[1, 2, 3]).unwrap_err();
        match error.at("account tag list", (1_400_000_001u64, 7u32)) {
            StoreError::Corrupt { what, detail } => {
                assert_eq!(what, "account tag list");
                assert!(detail.contains("(1400000001, 7)"), "{detail}");
            }
            other => panic!("not Corrupt: {other:?}"),
        }
    }
}
