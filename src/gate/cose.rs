//! Notary Project signatures in a COSE envelope (`application/cose`, `notation sign
//! --signature-format cose`): a tagged COSE_Sign1 (RFC 9052) read into the same form as a JWS
//! envelope, so that one verification decides both. A small CBOR reader of its own: only the
//! definite-length items COSE_Sign1 uses, nested at most [`MAX_DEPTH`] deep. Pure.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::notary::{AUTHENTIC_TIME, EXPIRY, Signed};

const MAX_DEPTH: usize = 8;
const COSE_SIGN1_TAG: u64 = 18;
/// The CBOR tag of an epoch time (RFC 8949 §3.4.2), as notation writes its times.
const EPOCH_TAG: u64 = 1;
const ALG: i64 = 1;
const CRIT: i64 = 2;
const CONTENT_TYPE: i64 = 3;
const X5CHAIN: i64 = 33;

/// A CBOR item, as far as COSE needs.
#[derive(Clone, Debug, PartialEq)]
enum Item {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Item>),
    Map(Vec<(Item, Item)>),
    Tag(u64, Box<Item>),
    Other,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or("a COSE envelope cut short")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn argument(&mut self, info: u8) -> Result<u64, String> {
        let n = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Err("a COSE envelope with indefinite or reserved lengths".into()),
        };
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b)))
    }

    fn len(&mut self, info: u8) -> Result<usize, String> {
        let n = usize::try_from(self.argument(info)?).map_err(|e| e.to_string())?;
        // No item is longer than what is left of the envelope.
        if n > self.bytes.len() - self.at {
            return Err("a COSE envelope with a length past its end".into());
        }
        Ok(n)
    }

    fn item(&mut self, depth: usize) -> Result<Item, String> {
        if depth > MAX_DEPTH {
            return Err("a COSE envelope nested too deep".into());
        }
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        Ok(match major {
            0 => Item::Int(i64::try_from(self.argument(info)?).map_err(|e| e.to_string())?),
            1 => Item::Int(-1 - i64::try_from(self.argument(info)?).map_err(|e| e.to_string())?),
            2 => {
                let n = self.len(info)?;
                Item::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.len(info)?;
                Item::Text(String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())?)
            }
            4 => {
                let n = self.len(info)?;
                Item::Array(
                    (0..n)
                        .map(|_| self.item(depth + 1))
                        .collect::<Result<_, _>>()?,
                )
            }
            5 => {
                let n = self.len(info)?;
                let pairs = (0..n).map(|_| Ok((self.item(depth + 1)?, self.item(depth + 1)?)));
                Item::Map(pairs.collect::<Result<_, String>>()?)
            }
            6 => {
                let tag = self.argument(info)?;
                Item::Tag(tag, Box::new(self.item(depth + 1)?))
            }
            _ => {
                self.argument(info)?;
                Item::Other
            }
        })
    }
}

fn decode(bytes: &[u8]) -> Result<Item, String> {
    let mut r = Reader { bytes, at: 0 };
    let item = r.item(0)?;
    if r.at != bytes.len() {
        return Err("a COSE envelope with bytes after its end".into());
    }
    Ok(item)
}

/// A CBOR head: major type and length.
fn head(out: &mut Vec<u8>, major: u8, n: usize) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
    }
}

/// `Sig_structure` for COSE_Sign1: `["Signature1", protected, h'', payload]`, encoded.
fn to_be_signed(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(protected.len() + payload.len() + 32);
    head(&mut out, 4, 4);
    head(&mut out, 3, 10);
    out.extend_from_slice(b"Signature1");
    for b in [protected, &[], payload] {
        head(&mut out, 2, b.len());
        out.extend_from_slice(b);
    }
    out
}

fn label(key: &Item) -> Option<String> {
    match key {
        Item::Int(i) => Some(i.to_string()),
        Item::Text(t) => Some(t.clone()),
        _ => None,
    }
}

fn get(map: &[(Item, Item)], key: i64) -> Option<&Item> {
    map.iter()
        .find(|(k, _)| *k == Item::Int(key))
        .map(|(_, v)| v)
}

fn alg(id: i64) -> Result<&'static str, String> {
    Ok(match id {
        -37 => "PS256",
        -38 => "PS384",
        -39 => "PS512",
        -7 => "ES256",
        -35 => "ES384",
        -36 => "ES512",
        other => return Err(format!("a Notary COSE signature with algorithm {other}")),
    })
}

fn epoch(item: Option<&Item>) -> Result<Option<SystemTime>, String> {
    match item {
        None => Ok(None),
        Some(Item::Tag(EPOCH_TAG, t)) => match **t {
            Item::Int(s) if s >= 0 => {
                Ok(Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s as u64)))
            }
            _ => Err("a COSE time that is not whole seconds".into()),
        },
        Some(_) => Err("a COSE time without its epoch tag".into()),
    }
}

/// Reads a tagged COSE_Sign1 as notation writes it.
pub(super) fn read(bytes: &[u8]) -> Result<Signed, String> {
    let Item::Tag(COSE_SIGN1_TAG, sign1) = decode(bytes)? else {
        return Err("a COSE envelope that is not a tagged COSE_Sign1".into());
    };
    let Item::Array(parts) = *sign1 else {
        return Err("a COSE_Sign1 that is not an array".into());
    };
    let [
        Item::Bytes(protected),
        Item::Map(unprotected),
        Item::Bytes(payload),
        Item::Bytes(sig),
    ] = parts.as_slice()
    else {
        return Err("a COSE_Sign1 without protected header, payload and signature".into());
    };
    let Item::Map(header) = decode(protected)? else {
        return Err("a COSE protected header that is not a map".into());
    };
    let chain = match get(unprotected, X5CHAIN) {
        Some(Item::Bytes(one)) => vec![one.clone()],
        Some(Item::Array(certs)) => certs
            .iter()
            .map(|c| match c {
                Item::Bytes(b) => Ok(b.clone()),
                _ => Err("a COSE x5chain entry that is not bytes".to_owned()),
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let Some(Item::Int(alg_id)) = get(&header, ALG) else {
        return Err("a COSE signature without its algorithm".into());
    };
    let by_name = |k: &str| header.iter().find(|(key, _)| *key == Item::Text(k.into()));
    let strings: HashMap<String, String> = header
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (Item::Text(k), Item::Text(v)) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect();
    Ok(Signed {
        alg: alg(*alg_id)?.to_owned(),
        message: to_be_signed(protected, payload),
        signature: sig.clone(),
        chain,
        content_type: match get(&header, CONTENT_TYPE) {
            Some(Item::Text(t)) => Some(t.clone()),
            _ => None,
        },
        critical: match get(&header, CRIT) {
            Some(Item::Array(labels)) => labels
                .iter()
                .map(|l| label(l).unwrap_or_default())
                .collect(),
            _ => Vec::new(),
        },
        expiry: epoch(by_name(EXPIRY).map(|(_, v)| v)).map_err(|e| format!("expiry: {e}"))?,
        authentic_time: epoch(by_name(AUTHENTIC_TIME).map(|(_, v)| v))
            .map_err(|e| format!("authentic signing time: {e}"))?,
        strings,
        payload: payload.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbor_heads_and_refusals() {
        let mut out = Vec::new();
        head(&mut out, 2, 300);
        assert_eq!(out, [0x59, 0x01, 0x2c]);
        assert_eq!(decode(&[0x39, 0x01, 0x00]).unwrap(), Item::Int(-257));
        assert!(decode(&[0x5f]).is_err(), "indefinite length");
        assert!(
            decode(&[0x5a, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "a length past the end"
        );
        assert!(decode(&[0x01, 0x02]).is_err(), "bytes after the end");
        assert!(decode(&[0x81; 20]).is_err(), "too deep");
        assert!(read(&[0xd2, 0x80]).is_err(), "an empty COSE_Sign1");
    }
}
