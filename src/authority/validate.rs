//! Request validation shared by the RPCs: the field limits, and
//! [`Violations`], which collects every violation of a request into one
//! `invalid_argument` so a client fixes all at once.

use crate::error::{Error, Violation};
use crate::store::ClientInfo;

/// Longest subject, tenant, audience, role or scope (bytes).
pub const MAX_NAME_BYTES: usize = 256;
/// Most entries in each of audience, roles, scopes.
pub const MAX_LIST_LEN: usize = 64;
/// Longest device fingerprint (bytes); it is hashed anyway.
pub const MAX_FINGERPRINT_BYTES: usize = 1024;
/// Longest User-Agent kept for ListSessions (bytes).
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// Characters no name, list entry or reason may hold: controls (C0, C1,
/// NUL), Unicode format characters (category Cf: bidi overrides such as
/// U+202E, zero-width U+200B, the BOM) and the line and paragraph
/// separators U+2028/U+2029. They end up in tokens, logs and audit lines,
/// where they hide or reorder what a person reads. The Cf ranges are those
/// of Unicode 15.
pub fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// Collects every violation of a request, so a client fixes all at once.
#[derive(Default)]
pub(crate) struct Violations(Vec<Violation>);

impl Violations {
    pub fn add(&mut self, field: &'static str, description: impl Into<String>) {
        self.0.push(Violation::new(field, description));
    }

    pub fn name(&mut self, field: &'static str, value: &str, required: bool) {
        if required && value.is_empty() {
            self.add(field, "must not be empty");
        } else if value.len() > MAX_NAME_BYTES {
            self.add(field, format!("must be at most {MAX_NAME_BYTES} bytes"));
        } else if value.chars().any(is_hidden_char) {
            self.add(
                field,
                "must not contain control or invisible format characters",
            );
        }
    }

    /// A list of names; `no_spaces`: no entry may hold whitespace of any
    /// kind (Unicode `White_Space`: a space, a no-break space, U+3000, …).
    /// Roles and scopes are such lists: `scope` and the `x-tessera-scopes`
    /// and `x-tessera-roles` headers of ext_authz join them with a space,
    /// so `["team admin"]` must never be told apart from `["team",
    /// "admin"]` by a split.
    pub fn list(&mut self, field: &'static str, values: &[String], no_spaces: bool) {
        if values.len() > MAX_LIST_LEN {
            self.add(field, format!("must have at most {MAX_LIST_LEN} entries"));
        }
        for v in values {
            if v.is_empty() || v.len() > MAX_NAME_BYTES || v.chars().any(is_hidden_char) {
                self.add(
                    field,
                    format!("entries must be 1 to {MAX_NAME_BYTES} bytes of printable text"),
                );
                break;
            }
            if no_spaces && v.chars().any(char::is_whitespace) {
                self.add(field, "entries must not contain spaces or other whitespace");
                break;
            }
        }
    }

    /// Optional printable text of at most `max` bytes.
    pub fn text(&mut self, field: &'static str, value: &str, max: usize) {
        self.max_len(field, value, max);
        if value.chars().any(is_hidden_char) {
            self.add(
                field,
                "must not contain control or invisible format characters",
            );
        }
    }

    /// An RFC 8705 `x5t#S256`, when given: base64url (no padding) of 32 bytes.
    pub fn thumbprint(&mut self, field: &'static str, value: &str) {
        let ok = value.is_empty()
            || (value.len() == 43
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        if !ok {
            self.add(
                field,
                "must be a base64url SHA-256 thumbprint (43 characters)",
            );
        }
    }

    /// A DPoP proof and the request it was made for, when given.
    pub fn dpop(&mut self, proof: &str, method: &str, url: &str) {
        self.max_len("dpop_proof", proof, crate::tokens::MAX_TOKEN_BYTES);
        if !proof.is_empty() {
            if method.is_empty()
                || method.len() > 16
                || !method.bytes().all(|b| b.is_ascii_uppercase())
            {
                self.add(
                    "http_method",
                    "an HTTP method (GET, POST, ...) is required with a proof",
                );
            }
            if url.is_empty() || url.len() > 2048 || url.chars().any(is_hidden_char) {
                self.add(
                    "http_url",
                    "the request URL (at most 2048 bytes) is required with a proof",
                );
            }
        }
    }

    /// Where the client is, as Issue and Refresh may report it.
    pub fn client(&mut self, ip_address: String, user_agent: String) -> ClientInfo {
        if !ip_address.is_empty() && ip_address.parse::<std::net::IpAddr>().is_err() {
            self.add("ip_address", "must be an IPv4 or IPv6 address");
        }
        self.text("user_agent", &user_agent, MAX_USER_AGENT_BYTES);
        ClientInfo {
            ip_address,
            user_agent,
        }
    }

    pub fn max_len(&mut self, field: &'static str, value: &str, max: usize) {
        if value.len() > max {
            self.add(field, format!("must be at most {max} bytes"));
        }
    }

    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}
