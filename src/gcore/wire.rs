//! The wire format of `GET /iam/users`, scanned straight into a [`UserAggregator`].
//!
//! A page is read in one pass over its bytes: each user's few fields are picked out, counted,
//! and forgotten before the next user, so a poll never holds a list of users. Everything else
//! (e-mails, names, phones, nested roles) is skipped eight bytes at a time without being decoded.
//!
//! This is a hand-written scanner rather than serde because parsing was the poll's cost: through
//! serde_json the page cost twice what serde_json needs merely to skip the same bytes. The
//! scanner accepts and rejects exactly what the serde reading did (strict JSON, serde_json's
//! nesting limit, UTF-8 checked in every key and every string it keeps). That serde reading is
//! kept in `crates/gcore-iam-testkit/src/oracle.rs`: the property tests and the fuzz target compare
//! the two on every input they make.
//!
//! Tolerated, as the real API and its SDKs require: the `{count, next, previous, results}`
//! envelope, the bare array the API answers without `limit`, the old `result` key, `null` where a
//! boolean or list is expected, numbers such as `12.0` where integers are expected, and unknown
//! fields.

use std::borrow::Cow;

use crate::snapshot::{GroupRef, UserAggregator, UserFacts};

/// What a page said about itself, once its users have been counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSummary {
    /// The API's total (`count`); `None` when the page does not say: a bare array, or an
    /// envelope without `count` (or with `count: null`).
    pub count: Option<u64>,
    /// User records on this page (duplicates included).
    pub results: u64,
    /// The page is a bare array, the API's answer without `limit`: the whole list at once.
    pub whole_list: bool,
}

/// Why a body is not a users page, and where the scanner stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at byte {offset}")]
pub struct WireError {
    pub problem: Problem,
    pub offset: usize,
}

/// What was wrong with a body. The wording names the JSON, never its content: a body may hold
/// personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the body ends too early")]
    Truncated,
    #[error("expected {0}")]
    Expected(Expected),
    #[error("invalid number")]
    InvalidNumber,
    #[error("control character in a string")]
    ControlCharacter,
    #[error("invalid escape in a string")]
    InvalidEscape,
    #[error("invalid UTF-8 or unpaired surrogate in a string")]
    InvalidUnicode,
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("characters after the page")]
    TrailingCharacters,
    #[error("a user has no `id`")]
    MissingId,
    #[error("an object page has no `results`")]
    MissingResults,
    #[error("a number that is not a non-negative whole number")]
    NotWholeNumber,
}

/// What the scanner expected where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Expected {
    #[error("an object or an array of users")]
    Page,
    #[error("a key")]
    Key,
    #[error("a key or `}}`")]
    KeyOrEnd,
    #[error("`,` or `}}`")]
    CommaOrObjectEnd,
    #[error("`,` or `]`")]
    CommaOrArrayEnd,
    #[error("`:`")]
    Colon,
    #[error("an array of users or null")]
    Users,
    #[error("a user object")]
    User,
    #[error("a list of groups or null")]
    Groups,
    #[error("a group object")]
    Group,
    #[error("a list of auth types or null")]
    AuthTypes,
    #[error("an auth type string")]
    AuthType,
    #[error("a boolean or null")]
    Bool,
    #[error("a string or null")]
    Str,
    #[error("a number")]
    Number,
    #[error("a value")]
    Value,
}

/// The scanner's own result: the problem alone, small enough to travel in registers; the offset
/// is the scanner's position when it stopped.
type Scan<T> = Result<T, Problem>;

/// The deepest nesting accepted, serde_json's own limit (it refuses the 128th level).
pub const MAX_DEPTH: u32 = 127;

/// Parses one page and feeds its users to `aggregator`.
pub fn parse_page(body: &[u8], aggregator: &mut UserAggregator) -> Result<PageSummary, WireError> {
    let mut scanner = Scanner { bytes: body, pos: 0, depth: 0 };
    scanner.page(aggregator).map_err(|problem| WireError { problem, offset: scanner.pos })
}

/// A string as it stands between its quotes, escapes not yet decoded.
#[derive(Clone, Copy)]
struct RawStr<'a> {
    raw: &'a [u8],
    escaped: bool,
}

/// The user fields read; every other one is skipped without being decoded.
enum UserField {
    Id,
    Deleted,
    Groups,
    Activated,
    SsoAuth,
    TwoFa,
    AuthTypes,
    UserType,
    IsActive,
    Other,
}

impl UserField {
    fn of(name: &[u8]) -> UserField {
        match name {
            b"id" => UserField::Id,
            b"deleted" => UserField::Deleted,
            b"groups" => UserField::Groups,
            b"activated" => UserField::Activated,
            b"sso_auth" => UserField::SsoAuth,
            b"two_fa" => UserField::TwoFa,
            b"auth_types" => UserField::AuthTypes,
            b"user_type" => UserField::UserType,
            b"is_active" => UserField::IsActive,
            _ => UserField::Other,
        }
    }
}

/// One group of a user, borrowed from the page unless its name had escapes.
struct WireGroup<'a> {
    id: Option<u64>,
    name: Option<Cow<'a, str>>,
}

/// Where the lists of the user being read start in the page. They are checked on the first
/// pass and read again once the user's flags are known (they may come after the lists), so
/// that a user's lists are never collected: an answer can list a million groups for one user,
/// and collecting them cost ten times the answer's size.
#[derive(Default, Clone, Copy)]
struct ListPositions {
    groups: Option<usize>,
    auth_types: Option<usize>,
}

/// The scalar fields of one user. A missing or null flag counts as `false`: for 2FA and
/// activation that is the cautious reading, the one that shows on a security dashboard.
#[derive(Default)]
struct WireUser<'a> {
    id: Option<u64>,
    deleted: Option<bool>,
    activated: Option<bool>,
    sso_auth: Option<bool>,
    two_fa: Option<bool>,
    user_type: Option<Cow<'a, str>>,
    is_active: Option<bool>,
}

/// A cursor over one page. Each method consumes one piece of JSON at `pos`; on an error, `pos`
/// is left where the problem is, which [`parse_page`] reports as the offset.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Objects and arrays open around `pos`.
    depth: u32,
}

impl<'a> Scanner<'a> {
    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next significant byte, not consumed.
    #[inline(always)]
    fn token(&mut self) -> Scan<u8> {
        match self.bytes.get(self.pos) {
            // Pages are usually written without whitespace.
            Some(&byte) if byte > b' ' => Ok(byte),
            _ => {
                self.skip_whitespace();
                self.bytes.get(self.pos).copied().ok_or(Problem::Truncated)
            }
        }
    }

    #[inline(always)]
    fn colon(&mut self) -> Scan<()> {
        if self.token()? != b':' {
            return Err(Problem::Expected(Expected::Colon));
        }
        self.pos += 1;
        Ok(())
    }

    fn page(&mut self, aggregator: &mut UserAggregator) -> Scan<PageSummary> {
        let summary = match self.token()? {
            b'[' => PageSummary { count: None, results: self.users(aggregator)?, whole_list: true },
            b'{' => self.envelope(aggregator)?,
            _ => return Err(Problem::Expected(Expected::Page)),
        };
        self.skip_whitespace();
        if self.pos != self.bytes.len() {
            return Err(Problem::TrailingCharacters);
        }
        Ok(summary)
    }

    /// Consumes the `{` or `[` at `pos`, one level deeper.
    #[inline(always)]
    fn enter(&mut self) -> Scan<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Problem::TooDeep);
        }
        self.pos += 1;
        Ok(())
    }

    /// Consumes the `}` or `]` at `pos`, one level up.
    #[inline(always)]
    fn leave(&mut self) {
        self.pos += 1;
        self.depth -= 1;
    }

    /// The next key of the object entered last, its `:` consumed; `None` at its `}`.
    /// `first` is true for the first call on an object.
    #[inline(always)]
    fn next_key(&mut self, first: &mut bool) -> Scan<Option<RawStr<'a>>> {
        match self.token()? {
            b'}' => {
                self.leave();
                return Ok(None);
            }
            b',' if !*first => {
                self.pos += 1;
                if self.token()? != b'"' {
                    return Err(Problem::Expected(Expected::Key));
                }
            }
            b'"' if *first => {}
            _ => return Err(Problem::Expected(if *first { Expected::KeyOrEnd } else { Expected::CommaOrObjectEnd })),
        }
        *first = false;
        let key = self.string()?;
        self.colon()?;
        Ok(Some(key))
    }

    /// Whether another element of the array entered last follows (positioned on it); false
    /// at its `]`, which is consumed.
    #[inline(always)]
    fn next_element(&mut self, first: &mut bool) -> Scan<bool> {
        match self.token()? {
            b']' => {
                self.leave();
                return Ok(false);
            }
            b',' if !*first => {
                self.pos += 1;
                self.token()?;
            }
            _ if *first => {}
            _ => return Err(Problem::Expected(Expected::CommaOrArrayEnd)),
        }
        *first = false;
        Ok(true)
    }

    /// `{count, results}` (or the old `result` key), in any order, with anything else skipped.
    fn envelope(&mut self, aggregator: &mut UserAggregator) -> Scan<PageSummary> {
        self.enter()?;
        let mut count = None;
        let mut results = None;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            match &*self.key_name(key)? {
                b"count" => count = self.optional_whole_number()?,
                b"results" | b"result" => {
                    let n = match self.token()? {
                        b'n' => self.literal(b"null").map(|()| 0)?,
                        b'[' => self.users(aggregator)?,
                        _ => return Err(Problem::Expected(Expected::Users)),
                    };
                    results = Some(results.unwrap_or(0) + n);
                }
                _ => self.skip_value()?,
            }
        }
        let results = results.ok_or(Problem::MissingResults)?;
        Ok(PageSummary { count, results, whole_list: false })
    }

    /// The array of users at `pos`, each counted as soon as it is read. Returns the records read.
    fn users(&mut self, aggregator: &mut UserAggregator) -> Scan<u64> {
        self.enter()?;
        let mut n = 0;
        let mut first = true;
        while self.next_element(&mut first)? {
            let (user, lists) = self.user()?;
            self.count_user(&user, lists, aggregator)?;
            n += 1;
        }
        Ok(n)
    }

    /// Reads one user's scalar fields and checks its lists, noting where they are.
    fn user(&mut self) -> Scan<(WireUser<'a>, ListPositions)> {
        if self.token()? != b'{' {
            return Err(Problem::Expected(Expected::User));
        }
        self.enter()?;
        let mut lists = ListPositions::default();
        let mut user = WireUser::default();
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            match UserField::of(&self.key_name(key)?) {
                UserField::Id => user.id = Some(self.whole_number()?),
                UserField::Deleted => user.deleted = self.optional_bool()?,
                UserField::Activated => user.activated = self.optional_bool()?,
                UserField::SsoAuth => user.sso_auth = self.optional_bool()?,
                UserField::TwoFa => user.two_fa = self.optional_bool()?,
                UserField::IsActive => user.is_active = self.optional_bool()?,
                UserField::UserType => user.user_type = self.optional_string()?,
                // A key given twice counts with its last value, as serde read it.
                UserField::Groups => {
                    lists.groups = Some(self.pos);
                    self.groups(|_| {})?;
                }
                UserField::AuthTypes => {
                    lists.auth_types = Some(self.pos);
                    self.auth_types(|_| {})?;
                }
                UserField::Other => self.skip_value()?,
            }
        }
        if user.id.is_none() {
            return Err(Problem::MissingId);
        }
        Ok((user, lists))
    }

    /// Counts a user read by [`Scanner::user`], reading its lists a second time from where
    /// they start, straight into the aggregator.
    fn count_user(&self, user: &WireUser<'_>, lists: ListPositions, aggregator: &mut UserAggregator) -> Scan<()> {
        let facts = UserFacts {
            id: user.id.unwrap_or_default(),
            deleted: user.deleted.unwrap_or(false),
            user_type: user.user_type.as_deref().unwrap_or("unknown"),
            two_fa: user.two_fa.unwrap_or(false),
            activated: user.activated.unwrap_or(false),
            sso_auth: user.sso_auth.unwrap_or(false),
            is_active: user.is_active.unwrap_or(false),
        };
        let Some(mut counter) = aggregator.begin(&facts) else { return Ok(()) };
        // The first pass checked these lists, nesting depth included, so the second pass
        // starts at the top level and cannot fail; an error would still be reported, not
        // ignored.
        if let Some(pos) = lists.groups {
            let mut again = Scanner { bytes: self.bytes, pos, depth: 0 };
            again.groups(|group| counter.group(GroupRef { id: group.id, name: group.name.as_deref() }))?;
        }
        if let Some(pos) = lists.auth_types {
            let mut again = Scanner { bytes: self.bytes, pos, depth: 0 };
            again.auth_types(|auth_type| counter.auth_type(&auth_type))?;
        }
        Ok(())
    }

    /// Enters the list at `pos` and returns true, or consumes a `null`, which reads as an empty
    /// list, and returns false.
    fn open_list(&mut self, expected: Expected) -> Scan<bool> {
        match self.token()? {
            b'n' => self.literal(b"null").map(|()| false),
            b'[' => self.enter().map(|()| true),
            _ => Err(Problem::Expected(expected)),
        }
    }

    /// `groups`: null, or an array of `{id, name}` objects, each given to `each` as it is read.
    fn groups(&mut self, mut each: impl FnMut(WireGroup<'a>)) -> Scan<()> {
        if !self.open_list(Expected::Groups)? {
            return Ok(());
        }
        let mut first = true;
        while self.next_element(&mut first)? {
            if self.token()? != b'{' {
                return Err(Problem::Expected(Expected::Group));
            }
            self.enter()?;
            let mut group = WireGroup { id: None, name: None };
            let mut first_key = true;
            while let Some(key) = self.next_key(&mut first_key)? {
                match &*self.key_name(key)? {
                    b"id" => group.id = self.optional_whole_number()?,
                    b"name" => group.name = self.optional_string()?,
                    _ => self.skip_value()?,
                }
            }
            each(group);
        }
        Ok(())
    }

    /// `auth_types`: null, or an array of strings, each given to `each` as it is read.
    fn auth_types(&mut self, mut each: impl FnMut(Cow<'a, str>)) -> Scan<()> {
        if !self.open_list(Expected::AuthTypes)? {
            return Ok(());
        }
        let mut first = true;
        while self.next_element(&mut first)? {
            if self.token()? != b'"' {
                return Err(Problem::Expected(Expected::AuthType));
            }
            let raw = self.string()?;
            each(self.decode(raw)?);
        }
        Ok(())
    }

    #[inline(always)]
    fn optional_bool(&mut self) -> Scan<Option<bool>> {
        match self.token()? {
            b't' => self.literal(b"true").map(|()| Some(true)),
            b'f' => self.literal(b"false").map(|()| Some(false)),
            b'n' => self.literal(b"null").map(|()| None),
            _ => Err(Problem::Expected(Expected::Bool)),
        }
    }

    #[inline(always)]
    fn optional_string(&mut self) -> Scan<Option<Cow<'a, str>>> {
        match self.token()? {
            b'"' => {
                let raw = self.string()?;
                self.decode(raw).map(Some)
            }
            b'n' => self.literal(b"null").map(|()| None),
            _ => Err(Problem::Expected(Expected::Str)),
        }
    }

    #[inline(always)]
    fn optional_whole_number(&mut self) -> Scan<Option<u64>> {
        if self.token()? == b'n' {
            return self.literal(b"null").map(|()| None);
        }
        self.whole_number().map(Some)
    }

    /// A non-negative whole number written as a JSON integer or float (`client` is documented
    /// as a `number`, and some serializers write ids as `12.0`).
    #[inline(always)]
    fn whole_number(&mut self) -> Scan<u64> {
        if !matches!(self.token()?, b'-' | b'0'..=b'9') {
            return Err(Problem::Expected(Expected::Number));
        }
        let start = self.pos;
        let plain_integer = self.number()?;
        let text = &self.bytes[start..self.pos];
        if plain_integer && text[0] != b'-' {
            let mut value: u64 = 0;
            for &digit in text {
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                    .ok_or(Problem::NotWholeNumber)?;
            }
            return Ok(value);
        }
        // `number` admitted only JSON number syntax, which is ASCII and which `f64` parses.
        let value: f64 = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).ok_or(Problem::InvalidNumber)?;
        if value >= 0.0 && value.fract() == 0.0 && value < u64::MAX as f64 {
            Ok(value as u64)
        } else {
            Err(Problem::NotWholeNumber)
        }
    }

    /// Consumes a JSON number at `pos`. Returns whether it is a plain integer (no fraction, no
    /// exponent).
    #[inline(always)]
    fn number(&mut self) -> Scan<bool> {
        let bytes = self.bytes;
        let digits = |mut at: usize| {
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            at
        };
        let mut at = self.pos;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        match bytes.get(at) {
            Some(b'0') => {
                at += 1;
                // There can be only one leading zero.
                if bytes.get(at).is_some_and(u8::is_ascii_digit) {
                    self.pos = at;
                    return Err(Problem::InvalidNumber);
                }
            }
            Some(b'1'..=b'9') => at = digits(at + 1),
            _ => {
                self.pos = at;
                return Err(Problem::InvalidNumber);
            }
        }
        let mut plain = true;
        if bytes.get(at) == Some(&b'.') {
            plain = false;
            let end = digits(at + 1);
            if end == at + 1 {
                self.pos = end;
                return Err(Problem::InvalidNumber);
            }
            at = end;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            plain = false;
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let end = digits(at);
            if end == at {
                self.pos = end;
                return Err(Problem::InvalidNumber);
            }
            at = end;
        }
        self.pos = at;
        Ok(plain)
    }

    /// Consumes `word` (`true`, `false` or `null`) at `pos`.
    #[inline(always)]
    fn literal(&mut self, word: &'static [u8]) -> Scan<()> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) != Some(word) {
            return Err(if end > self.bytes.len() && word.starts_with(&self.bytes[self.pos..]) {
                Problem::Truncated
            } else {
                Problem::Expected(Expected::Value)
            });
        }
        self.pos = end;
        Ok(())
    }

    /// Skips one value, checking it is valid JSON but decoding nothing.
    fn skip_value(&mut self) -> Scan<()> {
        match self.token()? {
            b'"' => self.string().map(drop),
            b'{' => {
                self.enter()?;
                let mut first = true;
                while self.next_key(&mut first)?.is_some() {
                    self.skip_value()?;
                }
                Ok(())
            }
            b'[' => {
                self.enter()?;
                let mut first = true;
                while self.next_element(&mut first)? {
                    self.skip_value()?;
                }
                Ok(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => Err(Problem::Expected(Expected::Value)),
        }
    }

    /// Consumes the string whose opening quote is at `pos`; escapes are checked, not decoded.
    #[inline(always)]
    fn string(&mut self) -> Scan<RawStr<'a>> {
        let start = self.pos + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            at = find_special(self.bytes, at);
            match self.bytes.get(at) {
                Some(b'"') => {
                    self.pos = at + 1;
                    return Ok(RawStr { raw: &self.bytes[start..at], escaped });
                }
                Some(b'\\') => {
                    escaped = true;
                    at = self.escape_end(at)?;
                }
                Some(_) => {
                    self.pos = at;
                    return Err(Problem::ControlCharacter);
                }
                None => {
                    self.pos = at;
                    return Err(Problem::Truncated);
                }
            }
        }
    }

    /// The end of the escape whose backslash is at `at`.
    fn escape_end(&mut self, at: usize) -> Scan<usize> {
        match self.bytes.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
            Some(b'u') => match self.bytes.get(at + 2..at + 6) {
                Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(at + 6),
                Some(_) => {
                    self.pos = at;
                    Err(Problem::InvalidEscape)
                }
                None => {
                    self.pos = self.bytes.len();
                    Err(Problem::Truncated)
                }
            },
            Some(_) => {
                self.pos = at;
                Err(Problem::InvalidEscape)
            }
            None => {
                self.pos = self.bytes.len();
                Err(Problem::Truncated)
            }
        }
    }

    /// The name of a key, to match with the ones the scanner reads. Every key must be text,
    /// even when its value is skipped, as serde required.
    #[inline(always)]
    fn key_name(&self, key: RawStr<'a>) -> Scan<Cow<'a, [u8]>> {
        if key.escaped {
            return Ok(match self.decode(key)? {
                Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                Cow::Owned(text) => Cow::Owned(text.into_bytes()),
            });
        }
        if !key.raw.is_ascii() && std::str::from_utf8(key.raw).is_err() {
            return Err(Problem::InvalidUnicode);
        }
        Ok(Cow::Borrowed(key.raw))
    }

    /// The text of a string: borrowed from the page unless it has escapes to decode.
    #[inline(always)]
    fn decode(&self, string: RawStr<'a>) -> Scan<Cow<'a, str>> {
        let text = if string.escaped {
            unescape(string.raw).map(Cow::Owned)
        } else {
            std::str::from_utf8(string.raw).ok().map(Cow::Borrowed)
        };
        text.ok_or(Problem::InvalidUnicode)
    }
}

/// Decodes the escapes of a string already checked by [`Scanner::string`]. `None` for text
/// that is not UTF-8 or a `\u` escape that is half a surrogate pair.
fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(backslash) = rest.iter().position(|&b| b == b'\\') {
        out.extend_from_slice(&rest[..backslash]);
        let (decoded, used) = match rest[backslash + 1] {
            b'u' => {
                let high = hex4(&rest[backslash + 2..])?;
                match high {
                    0xD800..=0xDBFF => {
                        let low = rest
                            .get(backslash + 6..backslash + 8)
                            .filter(|p| *p == b"\\u")
                            .and_then(|_| hex4(&rest[backslash + 8..]))?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        let code = 0x1_0000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                        (char::from_u32(code)?, 12)
                    }
                    _ => (char::from_u32(u32::from(high))?, 6),
                }
            }
            other => (
                match other {
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    quoted => char::from(quoted),
                },
                2,
            ),
        };
        out.extend_from_slice(decoded.encode_utf8(&mut [0; 4]).as_bytes());
        rest = &rest[backslash + used..];
    }
    out.extend_from_slice(rest);
    String::from_utf8(out).ok()
}

/// The value of four hex digits (already checked by [`Scanner::escape_end`]).
fn hex4(bytes: &[u8]) -> Option<u16> {
    std::str::from_utf8(bytes.get(..4)?).ok().and_then(|h| u16::from_str_radix(h, 16).ok())
}

const ONES: u64 = u64::MAX / 255;

/// The first byte from `at` that ends a run of plain string bytes (a quote, a backslash or a
/// control character), or `bytes.len()`. Eight bytes at a time: e-mails, names and phone
/// numbers are most of a page.
#[inline(always)]
fn find_special(bytes: &[u8], mut at: usize) -> usize {
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("an 8-byte slice"));
        let special = special_bytes(word);
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while bytes.get(at).is_some_and(|&b| b != b'"' && b != b'\\' && b >= 0x20) {
        at += 1;
    }
    at
}

/// A mask with the high bit set in the lowest byte of `word` that is `"`, `\` or below 0x20
/// (bytes above that one may be flagged falsely: only the lowest flag is meaningful).
#[inline(always)]
fn special_bytes(word: u64) -> u64 {
    // Flipping bit 1 maps `"` (0x22) to 0x20 and keeps 0x00..=0x1F among themselves, so one
    // "below 0x21" test finds control characters and quotes together.
    let control_or_quote = below(word ^ (ONES * 0x02), 0x21);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    control_or_quote | backslash
}

/// The high bit of each byte of `word` below `n` (n <= 128), exact up to the lowest one.
#[inline(always)]
fn below(word: u64, n: u64) -> u64 {
    word.wrapping_sub(ONES * n) & !word & (ONES << 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = r#"{"id": 11, "email": "a@example.com", "name": null, "lang": "en", "phone": null,
        "company": "Acme", "reseller": 1, "client": 42.0, "deleted": false,
        "groups": [{"id": 1, "name": "Administrators"}], "activated": true, "sso_auth": false,
        "two_fa": false, "auth_types": ["password"], "user_type": "common", "is_active": true,
        "client_and_roles": [{"client_id": 42, "client_company_name": "Acme", "user_roles": ["2"], "user_id": 11}],
        "some_future_field": {"nested": [1, 2, 3e-2, -0.5, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9"]}}"#;

    fn parse(body: &str) -> (Result<PageSummary, WireError>, crate::snapshot::Snapshot) {
        parse_bytes(body.as_bytes())
    }

    fn parse_bytes(body: &[u8]) -> (Result<PageSummary, WireError>, crate::snapshot::Snapshot) {
        let mut agg = UserAggregator::new();
        let r = parse_page(body, &mut agg);
        (r, agg.finish(0))
    }

    #[test]
    fn envelope() {
        let body =
            format!(r#"{{"count": 5, "next": "/users?offset=1&limit=1", "previous": null, "results": [{USER}]}}"#);
        let (r, s) = parse(&body);
        assert_eq!(r.unwrap(), PageSummary { count: Some(5), results: 1, whole_list: false });
        assert_eq!(s.active_users, 1);
        let admins_without_2fa: u64 =
            s.groups.iter().filter(|g| &*g.group.name == "Administrators" && !g.two_fa).map(|g| g.users).sum();
        assert_eq!(admins_without_2fa, 1);
    }

    #[test]
    fn count_after_results_bare_array_and_old_result_key() {
        let (r, _) = parse(&format!(r#"{{"results": [{USER}], "count": 9}}"#));
        assert_eq!(r.unwrap(), PageSummary { count: Some(9), results: 1, whole_list: false });
        let (r, s) = parse(&format!(" [{USER}]\n"));
        assert_eq!(r.unwrap(), PageSummary { count: None, results: 1, whole_list: true });
        assert_eq!(s.active_users, 1);
        let (r, _) = parse(&format!(r#"{{"count": 1, "result": [{USER}]}}"#));
        assert_eq!(r.unwrap(), PageSummary { count: Some(1), results: 1, whole_list: false });
        // Without `count` the page does not say how many users there are; the pagination
        // decides what that means (it pages until an empty page).
        let (r, _) = parse(r#"{"results": []}"#);
        assert_eq!(r.unwrap(), PageSummary { count: None, results: 0, whole_list: false });
        let (r, _) = parse(&format!(r#"{{"count": null, "results": [{USER}]}}"#));
        assert_eq!(r.unwrap(), PageSummary { count: None, results: 1, whole_list: false });
    }

    #[test]
    fn nulls_and_missing_fields_are_tolerated() {
        let (r, s) =
            parse(r#"{"count": 1, "results": [{"id": 3, "groups": null, "two_fa": null, "auth_types": null}]}"#);
        assert_eq!(r.unwrap().results, 1);
        assert_eq!(s.active_users, 1);
        assert!(s.users.iter().any(|u| &*u.user_type == "unknown" && !u.two_fa && u.users == 1));
        let (r, _) = parse(r#"{"count": 0, "results": null}"#);
        assert_eq!(r.unwrap().results, 0);
    }

    #[test]
    fn ids_may_be_floats_or_exponents_but_whole_and_non_negative() {
        for (id, ok) in [("12", true), ("12.0", true), ("1.2e1", true), ("-0", true), ("18446744073709551615", true)]
            .into_iter()
            .chain([
                ("12.5", false),
                ("-3", false),
                ("18446744073709551616", false),
                ("1e999", false),
                ("\"12\"", false),
                ("null", false),
            ])
        {
            let (r, _) = parse(&format!(r#"[{{"id": {id}}}]"#));
            assert_eq!(r.is_ok(), ok, "id {id}: {r:?}");
        }
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let (r, s) = parse(
            r#"[{"id": 1, "user_\u0074ype": "com\u006don", "groups": [{"id": 99, "name": "Caf\u00e9 \"team\" \ud83d\ude00"}]}]"#,
        );
        r.unwrap();
        assert!(s.users.iter().any(|u| &*u.user_type == "common" && u.users == 1));
        assert!(s.groups.iter().any(|g| &*g.group.name == "Café \"team\" 😀" && g.users == 1));
    }

    #[test]
    fn strings_kept_must_be_text_strings_skipped_need_not() {
        // A skipped value is not decoded (serde_json did not check it either) ...
        let (r, _) = parse_bytes(b"[{\"id\": 1, \"email\": \"\xff\xfe\", \"name\": \"\\ud800\"}]");
        r.unwrap();
        // ... but a string the metrics read must be text, and so must every key.
        for body in [
            &b"[{\"id\": 1, \"user_type\": \"\xff\"}]"[..],
            b"[{\"id\": 1, \"user_type\": \"\\ud800\"}]",
            b"[{\"id\": 1, \"user_type\": \"\\udc00\"}]",
            b"[{\"id\": 1, \"user_type\": \"\\ud800\\u0041\"}]",
            b"[{\"id\": 1, \"\xff\": 1}]",
        ] {
            let (r, _) = parse_bytes(body);
            assert_eq!(r.unwrap_err().problem, Problem::InvalidUnicode, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn nesting_stops_where_serde_json_stops() {
        let nested = |levels: usize| format!(r#"[{{"id": 1, "x": {}{}}}]"#, "[".repeat(levels), "]".repeat(levels));
        // The page array and the user object are two levels.
        assert!(parse(&nested(MAX_DEPTH as usize - 2)).0.is_ok());
        assert_eq!(parse(&nested(MAX_DEPTH as usize - 1)).0.unwrap_err().problem, Problem::TooDeep);
        let hostile = format!(r#"[{{"id": 1, "x": {}"#, "[{\"a\":".repeat(100_000));
        assert_eq!(parse(&hostile).0.unwrap_err().problem, Problem::TooDeep);
    }

    #[test]
    fn the_string_scanner_finds_the_first_special_byte_wherever_it_is() {
        for len in 0..40 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                let mut bytes = vec![b'a'; len];
                bytes.extend_from_slice(&[0x80, 0xff, b'z']);
                bytes.push(special);
                bytes.extend_from_slice(b"\"\\ trailing");
                assert_eq!(find_special(&bytes, 0), len + 3, "len {len}, byte {special:#x}");
            }
            assert_eq!(find_special(&vec![b' '; len], 0), len);
        }
        // Every byte value, at every place of a word and of the tail, behind every other value.
        for byte in 0..=255u8 {
            let special = byte == b'"' || byte == b'\\' || byte < 0x20;
            for before in [b'a', 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff] {
                for at in 0..20 {
                    let mut bytes = vec![before; 20];
                    bytes[at] = byte;
                    let expected = if special { at } else { 20 };
                    assert_eq!(find_special(&bytes, 0), expected, "byte {byte:#x} at {at} after {before:#x}");
                }
            }
        }
    }

    #[test]
    fn malformed_pages_are_errors() {
        for body in [
            "",
            "   ",
            "{",
            r#"{"count": 3, "results": ["#,
            "<html><body>Bad gateway</body></html>",
            r#"{"count": 3}"#,
            r#"{"count": 1, "results": [{"email": "no-id@example.com"}]}"#,
            r#"{"count": 1, "results": [{"id": -4}]}"#,
            r#"{"count": 1, "results": [{"id": 1}]} trailing"#,
            r#"{"count": 1, "results": [{"id": 1},]}"#,
            r#"{"count": 1, "results": [{"id": 1,}]}"#,
            r#"{"count": 1, "results": [null]}"#,
            r#"{"count": 1 "results": []}"#,
            r#"{"count": "1", "results": []}"#,
            r#"{"count": 1, "results": {}}"#,
            r#"[{"id": 1, "two_fa": "yes"}]"#,
            r#"[{"id": 1, "two_fa": tru}]"#,
            r#"[{"id": 1, "groups": [null]}]"#,
            r#"[{"id": 1, "groups": {}}]"#,
            r#"[{"id": 1, "auth_types": [1]}]"#,
            r#"[{"id": 1, "email": "tab	inside"}]"#,
            r#"[{"id": 1, "email": "bad \x escape"}]"#,
            r#"[{"id": 1, "email": "\u12"}]"#,
            r#"[{"id": 01}]"#,
            r#"[{"id": 1, "x": 1.}]"#,
            r#"[{"id": 1, "x": .5}]"#,
            r#"[{"id": 1, "x": 1e}]"#,
            r#"[{"id": 1, "x": -}]"#,
            r#"[{"id": 1, "x": nul"#,
            r#"[{"id": 1, 2: 3}]"#,
            "42",
            "null",
            r#""a string""#,
        ] {
            assert!(parse(body).0.is_err(), "{body:?} should not parse");
        }
    }
}
