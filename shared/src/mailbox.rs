//! Mailbox addresses, and where each mailbox's token lives under `MAILBOXES_PATH`.
//!
//! # The name mapping
//! Parameter names allow only `a-zA-Z0-9_.-` and `/`, and addresses are compared
//! case-insensitively, so an address is first lowercased (Unicode-aware), then written as
//! `<path><domain>/<local part>` with every byte outside `a-z0-9_.-` as `X` and two
//! uppercase hex digits (`+` is `X2B`, `é` is `XC3XA9`). `X` itself never appears in a
//! lowercased address, so the mapping is injective and reversible:
//!
//! | address | parameter under `/gmail-oauth/mailboxes/` |
//! |---|---|
//! | `me@example.com`, `Me@Example.COM` | `example.com/me` |
//! | `first.last+news@gmail.com` | `gmail.com/first.lastX2Bnews` |
//! | `_` (not an address) | `_` |
//!
//! A string without `@` (or with nothing before or after the last `@`) maps to one segment.
//! A segment `.` or `..` has its dots escaped too, and so has the `c` of a local part
//! `checkpoint` (`checkpoint@example.com` is `example.com/X63heckpoint`): a token's name never
//! ends in `/checkpoint`, the segment of the events checkpoints (`<token>/checkpoint`), so
//! no token is ever taken for another's checkpoint. A name that, with its checkpoint's
//! `/checkpoint`, is longer than Parameter Store takes is an error that names the address,
//! never a truncated name.

use std::fmt;

/// The longest parameter name accepted: Parameter Store counts the ARN's prefix
/// (`arn:aws:ssm:<region>:<account>:parameter`, up to about 70 characters) into its 1011.
pub const MAX_PARAMETER_NAME: usize = 940;

/// The last segment of a mailbox's events checkpoint: `<token parameter>/checkpoint`.
pub const CHECKPOINT: &str = "checkpoint";

/// The name of the events checkpoint of the token in `token_name`: a child of it, so it
/// moves, and is allowed, with the token.
pub fn checkpoint_name(token_name: &str) -> String {
    format!("{token_name}/{CHECKPOINT}")
}

/// A mailbox address as compared: lowercased. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(String);

impl Address {
    /// The canonical form of `raw` (trimmed, lowercased), or `None` if nothing is left.
    pub fn new(raw: &str) -> Option<Address> {
        let canonical = raw.trim().to_lowercase();
        (!canonical.is_empty()).then_some(Address(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `(local part, domain)` when this is `local@domain` with both non-empty.
    fn parts(&self) -> Option<(&str, &str)> {
        self.0
            .rsplit_once('@')
            .filter(|(local, domain)| !local.is_empty() && !domain.is_empty())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an address has no parameter name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the address {address} makes a parameter name of {length} characters with its checkpoint's, more than {MAX_PARAMETER_NAME}"
)]
pub struct NameTooLong {
    pub address: Address,
    pub length: usize,
}

/// The parameter of `address` under `path` (which ends with `/`).
pub fn parameter_name(path: &str, address: &Address) -> Result<String, NameTooLong> {
    let relative = match address.parts() {
        Some((local, domain)) => format!("{}/{}", encode(domain), encode_local(local)),
        None => encode(address.as_str()),
    };
    let name = format!("{path}{relative}");
    let length = checkpoint_name(&name).len();
    if length > MAX_PARAMETER_NAME {
        return Err(NameTooLong {
            address: address.clone(),
            length,
        });
    }
    Ok(name)
}

/// The address whose parameter is `name` under `path`, or `None` if `name` is not one the
/// mapping makes (a parameter someone else put there, or one of this project's own
/// per-mailbox records, which end in a segment with capitals).
pub fn address_of(path: &str, name: &str) -> Option<Address> {
    let relative = name.strip_prefix(path)?;
    let raw = match relative.split('/').collect::<Vec<_>>()[..] {
        [single] => decode(single)?,
        [domain, local] => format!("{}@{}", decode(local)?, decode(domain)?),
        _ => return None,
    };
    let address = Address::new(&raw)?;
    // Only the mapping's own spelling counts: `A@X` or `X61` are not names it makes.
    (parameter_name(path, &address).ok()? == name).then_some(address)
}

/// A local part: as any segment, but `checkpoint` (the checkpoints' segment) has its first
/// letter escaped.
fn encode_local(local: &str) -> String {
    match local.strip_prefix('c') {
        Some(rest) if local == CHECKPOINT => format!("X63{rest}"),
        _ => encode(local),
    }
}

fn encode(segment: &str) -> String {
    let whole_dots = segment == "." || segment == "..";
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        let plain = byte.is_ascii_lowercase()
            || byte.is_ascii_digit()
            || matches!(byte, b'_' | b'-')
            || (byte == b'.' && !whole_dots);
        if plain {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("X{byte:02X}"));
        }
    }
    out
}

fn decode(segment: &str) -> Option<String> {
    if segment.is_empty() {
        return None;
    }
    let mut bytes = Vec::with_capacity(segment.len());
    let mut rest = segment.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'X' {
            let hex = tail.get(..2)?;
            let text = std::str::from_utf8(hex).ok()?;
            if !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            {
                return None;
            }
            bytes.push(u8::from_str_radix(text, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/gmail-oauth/mailboxes/";

    fn name(raw: &str) -> String {
        parameter_name(PATH, &Address::new(raw).unwrap()).unwrap()
    }

    #[test]
    fn ordinary_addresses_stay_readable() {
        assert_eq!(
            name("me@example.com"),
            "/gmail-oauth/mailboxes/example.com/me"
        );
        assert_eq!(
            name("first.last+news@gmail.com"),
            "/gmail-oauth/mailboxes/gmail.com/first.lastX2Bnews"
        );
        assert_eq!(
            name("a_b-c@sub.example.org"),
            "/gmail-oauth/mailboxes/sub.example.org/a_b-c"
        );
    }

    #[test]
    fn case_does_not_make_another_mailbox() {
        assert_eq!(name("A@X.COM"), name("a@x.com"));
        assert_eq!(name("  Me@Example.com "), name("me@example.com"));
        assert_eq!(Address::new("ÄB@X.COM").unwrap().as_str(), "äb@x.com");
    }

    #[test]
    fn hostile_addresses_map_to_valid_distinct_names_and_back() {
        let long_local = "a".repeat(240);
        let long = format!("{long_local}@example.com");
        let hostile = [
            "a+b@x.com",
            "A@X.COM",
            "_",
            "%",
            "x",
            "XX@x",
            "x2b@x.com",
            "a@b@c.com",
            "\"a@b\"@c.com",
            "@x.com",
            "me@",
            "@",
            ".@..",
            "..@.",
            "a/b@c/d",
            "../../etc@x",
            "ünïcödé@exämple.de",
            "日本@例え.jp",
            "a\u{0}b@x.com",
            "a\nb@x.com",
            "a b@x.com",
            long.as_str(),
            "aws@ssm",
            "checkpoint@example.com",
            "example.com",
            "Checkpoint@x",
            "x63heckpoint@example.com",
            "checkpoint",
            "checkpoint@checkpoint",
        ];
        let mut names = std::collections::HashSet::new();
        for raw in hostile {
            let address = Address::new(raw).unwrap();
            let name = parameter_name(PATH, &address).unwrap();
            let relative = name.strip_prefix(PATH).unwrap();
            assert!(
                relative
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)),
                "{raw:?} -> {name}"
            );
            assert!(relative.split('/').count() <= 2, "{raw:?} -> {name}");
            assert!(
                relative
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != ".."),
                "{raw:?} -> {name}"
            );
            assert_eq!(address_of(PATH, &name), Some(address.clone()), "{raw:?}");
            assert!(names.insert(name.clone()), "{raw:?} collides: {name}");
        }
        assert_eq!(names.len(), hostile.len());
    }

    #[test]
    fn a_local_part_checkpoint_is_escaped_so_no_token_is_another_mailboxs_checkpoint() {
        assert_eq!(
            name("checkpoint@example.com"),
            "/gmail-oauth/mailboxes/example.com/X63heckpoint"
        );
        assert_eq!(name("example.com"), "/gmail-oauth/mailboxes/example.com");
        assert_ne!(
            name("checkpoint@example.com"),
            checkpoint_name(&name("example.com"))
        );
        assert_eq!(
            address_of(PATH, "/gmail-oauth/mailboxes/example.com/checkpoint"),
            None
        );
    }

    /// Address-like strings from the pieces that have mattered: the checkpoints' segment,
    /// the escape letter, dots, `@`, case, bytes outside the name alphabet.
    fn address() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("checkpoint".to_owned()),
            Just("Checkpoint".to_owned()),
            Just("x63heckpoint".to_owned()),
            Just("X63".to_owned()),
            Just("@".to_owned()),
            Just(".".to_owned()),
            Just("/".to_owned()),
            "[a-zA-Z0-9_.+-]{1,8}",
            "[ -~]{1,4}",
            "[éü日\u{0}\n]{1,2}",
        ];
        proptest::collection::vec(piece, 1..6).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        /// For any two addresses: each name is valid and reads back as its address, two
        /// addresses never share a name, and no token's name is any mailbox's checkpoint.
        #[test]
        fn names_of_tokens_and_checkpoints_never_collide(a in address(), b in address()) {
            let (Some(a), Some(b)) = (Address::new(&a), Address::new(&b)) else {
                return Ok(());
            };
            let (Ok(name_a), Ok(name_b)) = (parameter_name(PATH, &a), parameter_name(PATH, &b)) else {
                return Ok(());
            };
            let relative = name_a.strip_prefix(PATH).unwrap();
            proptest::prop_assert!(relative.split('/').count() <= 2, "{name_a}");
            proptest::prop_assert!(relative
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)));
            proptest::prop_assert_eq!(address_of(PATH, &name_a), Some(a.clone()));
            proptest::prop_assert_eq!(a == b, name_a == name_b);
            proptest::prop_assert_ne!(&name_a, &checkpoint_name(&name_b));
            proptest::prop_assert!(!relative.ends_with("/checkpoint"), "{name_a}");
            proptest::prop_assert_eq!(address_of(PATH, &checkpoint_name(&name_b)), None);
        }
    }

    #[test]
    fn too_long_a_name_is_an_error_naming_the_address() {
        let address = Address::new(&format!("{}@x.com", "é".repeat(200))).unwrap();
        let error = parameter_name(PATH, &address).unwrap_err();
        assert_eq!(error.address, address);
        assert!(error.to_string().contains("@x.com"), "{error}");
    }

    #[test]
    fn names_the_mapping_does_not_make_are_not_mailboxes() {
        for name in [
            "/gmail-oauth/mailboxes/Example.com/me",
            "/gmail-oauth/mailboxes/example.com/X61",
            "/gmail-oauth/mailboxes/example.com/me/Checkpoint",
            "/gmail-oauth/mailboxes/a/b/c",
            "/gmail-oauth/mailboxes/x/XZZ",
            "/gmail-oauth/mailboxes/x/X4",
            "/gmail-oauth/mailboxes/",
            "/elsewhere/example.com/me",
        ] {
            assert_eq!(address_of(PATH, name), None, "{name}");
        }
    }
}
