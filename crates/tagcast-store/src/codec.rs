//! Compact byte encodings of the variable-length values in the store.
//!
//! Values written by this module are only ever read back by it, so a decode failure means a
//! corrupted file and is reported as storage corruption.

use crate::schema::{AttrSchema, AttrSlot};

/// Tag ids as consecutive little-endian u32s.
pub(crate) fn encode_tag_ids(ids: &[u32]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

pub(crate) fn decode_tag_ids(bytes: &[u8]) -> Vec<u32> {
    tag_ids_in(bytes).collect()
}

/// The tag ids without collecting them (index rebuilds read millions).
pub(crate) fn tag_ids_in(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
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

pub(crate) fn decode_attrs(bytes: &[u8]) -> Vec<(u8, String)> {
    attrs_in(bytes)
        .map(|(slot, value)| (slot, value.to_string()))
        .collect()
}

/// The attribute values without copying them (index rebuilds read millions).
pub(crate) fn attrs_in(bytes: &[u8]) -> impl Iterator<Item = (u8, &str)> {
    let mut reader = Reader(bytes);
    std::iter::from_fn(move || Some((reader.byte()?, reader.str()?)))
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

pub(crate) fn decode_schema(bytes: &[u8]) -> AttrSchema {
    let mut reader = Reader(bytes);
    let mut schema = AttrSchema::default();
    while let (Some(index), Some(account_type)) = (reader.byte(), reader.byte()) {
        let Some(name) = reader.str() else { break };
        if let Some(slot) = schema.slots.get_mut(index as usize) {
            *slot = Some(AttrSlot {
                name: name.to_string(),
                account_type,
            });
        }
    }
    schema
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = u16::from_le_bytes([self.byte()?, self.byte()?]) as usize;
        let bytes = self.0.get(..len)?;
        self.0 = &self.0[len..];
        std::str::from_utf8(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_ids_roundtrip() {
        let ids = vec![0, 7, u32::MAX, 42];
        assert_eq!(decode_tag_ids(&encode_tag_ids(&ids)), ids);
    }

    #[test]
    fn attrs_roundtrip() {
        let values = vec![
            (0, "male".to_string()),
            (9, "深圳".to_string()),
            (3, String::new()),
        ];
        assert_eq!(decode_attrs(&encode_attrs(&values)), values);
    }

    #[test]
    fn schema_roundtrip() {
        let mut schema = AttrSchema::default();
        schema.slots[1] = Some(AttrSlot {
            name: "city".into(),
            account_type: 0,
        });
        schema.slots[9] = Some(AttrSlot {
            name: "os".into(),
            account_type: 1,
        });
        assert_eq!(decode_schema(&encode_schema(&schema)), schema);
    }
}
