//! Scanning text for patient identifiers, so that publishing can refuse it.
//!
//! The library holds organisational healthcare documents for secure settings
//! (prisons, immigration removal centres and the like) and must never carry
//! anything that identifies a patient. Before a document is published its text
//! is scanned with [`find_identifiers`] (or [`find_identifiers_allowing`] when
//! an author has vouched for specific, known-safe values such as a published
//! example number) and publishing is refused if anything is found.
//!
//! Three kinds of identifier are recognised:
//!
//! * **NHS numbers**: ten digits, written contiguously (`9991234567`) or
//!   grouped 3-3-4 with single spaces or single hyphens (`999 123 4567`,
//!   `999-123-4567`), carrying a valid modulus-11 check digit.
//! * **CHI numbers** (Scotland): the same shapes and check digit, where the
//!   first six digits also form a valid `DDMMYY` date of birth.
//! * **Prison numbers**: one uppercase letter, four digits and two uppercase
//!   letters (`A1234BC`).
//!
//! In that plain form an identifier must stand on its own: the characters
//! immediately before and after it must not be alphanumeric.
//!
//! A second pass finds NHS and CHI numbers written so that the plain shapes
//! miss them but a reader sees ten digits: any separator between digit
//! groups (dots, slashes, brackets, dashes, line breaks, doubled or mixed),
//! letters directly before or after (`NHS9434765919`), zero-width and other
//! invisible characters, Markdown emphasis and escapes, HTML character
//! references, and digits of other scripts (fullwidth, Arabic-Indic). A run
//! of digit groups counts only when it holds exactly ten digits with a valid
//! check digit, so phone numbers (eleven digits, or twelve in `+44` form),
//! dates and version numbers are not taken for one. Both passes are linear
//! in the text and never panic.

use std::fmt;

/// The kind of patient identifier that was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentifierKind {
    /// An NHS number (England, Wales and the Isle of Man): ten digits with a
    /// modulus-11 check digit.
    NhsNumber,
    /// A Scottish CHI number: ten digits starting with a `DDMMYY` date of
    /// birth, with a modulus-11 check digit.
    ChiNumber,
    /// A prison number: one uppercase letter, four digits, two uppercase
    /// letters (for example `A1234BC`).
    PrisonNumber,
}

impl IdentifierKind {
    /// A short human-readable name for this kind, suitable for error messages
    /// (for example `"NHS number"`).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::NhsNumber => "NHS number",
            Self::ChiNumber => "CHI number",
            Self::PrisonNumber => "prison number",
        }
    }
}

impl IdentifierKind {
    /// The label with its indefinite article, for messages: "an NHS number".
    #[must_use]
    pub fn with_article(self) -> &'static str {
        match self {
            Self::NhsNumber => "an NHS number",
            Self::ChiNumber => "a CHI number",
            Self::PrisonNumber => "a prison number",
        }
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One patient identifier found in a text, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierMatch {
    /// What kind of identifier this is.
    pub kind: IdentifierKind,
    /// The identifier exactly as it appears in the text, including any
    /// grouping spaces or hyphens.
    pub text: String,
    /// The 1-based line the identifier starts on. Lines are separated by
    /// `\n`; a `\r\n` pair counts as a single line break.
    pub line: usize,
    /// The 1-based column the identifier starts at, counted in Unicode scalar
    /// values from the start of the line. Carriage returns are not counted.
    pub column: usize,
    /// The byte offset of the start of the identifier within the text.
    pub byte_offset: usize,
}

/// Finds every patient identifier in `text`, in order of appearance.
///
/// See the [module documentation](self) for the shapes recognised. This never
/// panics, whatever the input.
#[must_use]
pub fn find_identifiers(text: &str) -> Vec<IdentifierMatch> {
    let mut found = find_plain(text);
    for m in find_disguised(text) {
        let end = m.byte_offset + m.text.len();
        let overlaps = found
            .iter()
            .any(|f| f.byte_offset < end && m.byte_offset < f.byte_offset + f.text.len());
        if !overlaps {
            found.push(m);
        }
    }
    found.sort_by_key(|m| m.byte_offset);
    found
}

/// The identifiers written plainly: the shapes in the module documentation.
fn find_plain(text: &str) -> Vec<IdentifierMatch> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut line = 1usize;
    let mut column = 1usize;
    // Characters before this byte offset are inside a match already reported.
    let mut resume_at = 0usize;
    // Whether the previous character was alphanumeric (start of text is not).
    let mut prev_alnum = false;

    for (offset, ch) in text.char_indices() {
        if offset >= resume_at && !prev_alnum {
            let candidate = if ch.is_ascii_digit() {
                match_ten_digit(bytes, offset)
            } else if ch.is_ascii_uppercase() {
                match_prison_number(bytes, offset)
            } else {
                None
            };
            if let Some((kind, end)) = candidate
                && followed_by_boundary(text, end)
                && let Some(matched) = text.get(offset..end)
            {
                found.push(IdentifierMatch {
                    kind,
                    text: matched.to_owned(),
                    line,
                    column,
                    byte_offset: offset,
                });
                resume_at = end;
            }
        }

        match ch {
            '\n' => {
                line += 1;
                column = 1;
            }
            '\r' => {}
            _ => column += 1,
        }
        prev_alnum = ch.is_alphanumeric();
    }

    found
}

/// Characters that may stand between the digit groups of a disguised
/// number: spaces and line breaks, hyphens and dashes, dots, slashes,
/// brackets.
fn is_group_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\n'
            | '\r'
            | '-'
            | '.'
            | '/'
            | '('
            | ')'
            | '\u{a0}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2010}'..='\u{2015}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{2212}'
    )
}

/// Longest run of separators between two digit groups of one number.
const MAX_SEPARATOR_RUN: usize = 3;

/// Characters dropped before looking for disguised numbers: zero-width and
/// other invisible formatting characters, and Markdown's emphasis and
/// escape marks (`943**4**765919` and `943\-476\-5919` render as a number).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2060}'..='\u{2064}'
            | '\u{feff}'
            | '*'
            | '_'
            | '`'
            | '~'
            | '\\'
    )
}

/// The ASCII digit for a decimal digit of another script (fullwidth,
/// Arabic-Indic, Devanagari, mathematical), which renders as a digit.
fn ascii_digit(c: char) -> Option<char> {
    let zero = match c {
        '0'..='9' => return Some(c),
        '\u{ff10}'..='\u{ff19}' => 0xff10,
        '\u{660}'..='\u{669}' => 0x660,
        '\u{6f0}'..='\u{6f9}' => 0x6f0,
        '\u{966}'..='\u{96f}' => 0x966,
        '\u{1d7ce}'..='\u{1d7ff}' => 0x1d7ce + (u32::from(c) - 0x1d7ce) / 10 * 10,
        _ => return None,
    };
    char::from_digit(u32::from(c) - zero, 10)
}

/// The characters as a reader takes `c`, pushed with the span `from..to`
/// it came from: digits of other scripts by their value, and everything
/// else by its Unicode compatibility decomposition, as NFKC reads it
/// (fullwidth, superscript, circled and mathematical forms become ASCII
/// letters and digits; `⒐` becomes `9.`, `⑽` becomes `(10)`), with
/// combining marks left out (a digit with a stroke or a keycap through it
/// still reads as the digit).
fn fold_into(c: char, from: usize, to: usize, out: &mut Vec<(char, usize, usize)>) {
    if let Some(d) = ascii_digit(c) {
        out.push((d, from, to));
        return;
    }
    if c.is_ascii() {
        out.push((c, from, to));
        return;
    }
    unicode_normalization::char::decompose_compatible(c, |d| {
        if is_invisible(d) || unicode_normalization::char::is_combining_mark(d) {
            return;
        }
        out.push((ascii_digit(d).unwrap_or(d), from, to));
    });
}

/// Prison numbers hidden from the plain scan by invisible characters,
/// Markdown marks, HTML references or compatibility forms: one uppercase
/// letter, four digits, two uppercase letters, as read, standing alone.
fn find_disguised_prison_numbers(
    text: &str,
    chars: &[(char, usize, usize)],
    found: &mut Vec<IdentifierMatch>,
) {
    let shape = |i: usize| -> bool {
        let c = |k: usize| chars.get(i + k).map(|(c, ..)| *c);
        let upper = |k| c(k).is_some_and(|c: char| c.is_ascii_uppercase());
        let digit = |k| c(k).is_some_and(|c: char| c.is_ascii_digit());
        upper(0) && (1..5).all(digit) && upper(5) && upper(6)
    };
    let alnum = |k: Option<usize>| {
        k.and_then(|k| chars.get(k))
            .is_some_and(|(c, ..)| c.is_alphanumeric())
    };
    let mut cursor = Cursor::default();
    for i in 0..chars.len().saturating_sub(6) {
        if shape(i) && !alnum(i.checked_sub(1)) && !alnum(Some(i + 7)) {
            let (from, to) = (chars[i].1, chars[i + 6].2);
            let (line, column) = cursor.advance_to(text, from);
            found.push(IdentifierMatch {
                kind: IdentifierKind::PrisonNumber,
                text: text[from..to].to_owned(),
                line,
                column,
                byte_offset: from,
            });
        }
    }
}

/// Named character references that can sit between the digits of a
/// number: spaces, dashes, invisible characters, and the punctuation
/// separators are written with.
const NAMED_REFERENCES: [(&str, char); 22] = [
    ("nbsp", '\u{a0}'),
    ("NonBreakingSpace", '\u{a0}'),
    ("ensp", '\u{2002}'),
    ("emsp", '\u{2003}'),
    ("thinsp", '\u{2009}'),
    ("hairsp", '\u{200a}'),
    ("MediumSpace", '\u{205f}'),
    ("shy", '\u{ad}'),
    ("ZeroWidthSpace", '\u{200b}'),
    ("zwnj", '\u{200c}'),
    ("zwj", '\u{200d}'),
    ("NoBreak", '\u{2060}'),
    ("hyphen", '\u{2010}'),
    ("dash", '\u{2010}'),
    ("ndash", '\u{2013}'),
    ("mdash", '\u{2014}'),
    ("minus", '\u{2212}'),
    ("period", '.'),
    ("sol", '/'),
    ("colon", ':'),
    ("comma", ','),
    ("amp", '&'),
];

/// An HTML character reference at the start of `rest` (`&#57;`, `&#x39;`,
/// `&nbsp;`, `&ZeroWidthSpace;`): the character and the reference's length
/// in bytes.
fn character_reference(rest: &str) -> Option<(char, usize)> {
    let named = rest.strip_prefix('&').and_then(|r| {
        let end = r.find(';').filter(|&e| e <= 16)?;
        let c = NAMED_REFERENCES
            .iter()
            .find(|(name, _)| *name == &r[..end])?
            .1;
        Some((c, end + 2))
    });
    if named.is_some() {
        return named;
    }
    let body = rest.strip_prefix("&#")?;
    let end = body.find(';').filter(|&e| e > 0 && e <= 8)?;
    let digits = &body[..end];
    let value = match digits.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some((char::from_u32(value)?, end + 3))
}

/// Numbers written so that the plain scan misses them but a reader (or a
/// renderer) sees ten digits: any separator between digit groups (dots,
/// line breaks, doubled or mixed), letters directly before or after
/// (`NHS9434765919`), invisible characters, Markdown emphasis or escapes,
/// HTML character references, digits of other scripts. A run of digit
/// groups joined by separators counts when it holds exactly ten digits with
/// a valid check digit, so longer numbers (phone numbers, +44 forms) are not
/// taken for one.
fn find_disguised(text: &str) -> Vec<IdentifierMatch> {
    // The text as it reads: each character with the span it came from.
    let mut chars: Vec<(char, usize, usize)> = Vec::new();
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        if c == '&'
            && let Some((decoded, len)) = character_reference(&text[at..])
        {
            // A reference to an invisible character is as invisible.
            if !is_invisible(decoded) {
                fold_into(decoded, at, at + len, &mut chars);
            }
            at += len;
            continue;
        }
        let next = at + c.len_utf8();
        if !is_invisible(c) {
            fold_into(c, at, next, &mut chars);
        }
        at = next;
    }
    let mut found = Vec::new();
    let mut cursor = Cursor::default();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].0.is_ascii_digit() {
            i += 1;
            continue;
        }
        // One run of digit groups, from chars[i].
        let start = i;
        let mut digits: Vec<u8> = Vec::with_capacity(11);
        let mut last_digit = i;
        let mut j = i;
        // The whole run is read, however long, and counts only if it holds
        // exactly ten digits.
        loop {
            while j < chars.len() && chars[j].0.is_ascii_digit() {
                if digits.len() <= 10 {
                    digits.push(chars[j].0 as u8 - b'0');
                }
                last_digit = j;
                j += 1;
            }
            let gap = chars[j..]
                .iter()
                .take(MAX_SEPARATOR_RUN + 1)
                .take_while(|(c, ..)| is_group_separator(*c))
                .count();
            let continues = gap > 0
                && gap <= MAX_SEPARATOR_RUN
                && chars.get(j + gap).is_some_and(|(c, ..)| c.is_ascii_digit());
            if !continues {
                break;
            }
            j += gap;
        }
        if let Ok(ten) = <[u8; 10]>::try_from(digits.as_slice())
            && nhs_check_digit_valid(&ten)
        {
            let (from, to) = (chars[start].1, chars[last_digit].2);
            let kind = if is_ddmmyy(&ten) {
                IdentifierKind::ChiNumber
            } else {
                IdentifierKind::NhsNumber
            };
            let (line, column) = cursor.advance_to(text, from);
            found.push(IdentifierMatch {
                kind,
                text: text[from..to].to_owned(),
                line,
                column,
                byte_offset: from,
            });
        }
        i = j.max(i + 1);
    }
    find_disguised_prison_numbers(text, &chars, &mut found);
    found.sort_by_key(|m| m.byte_offset);
    found
}

/// Line and column of increasing byte offsets, each found from the last.
struct Cursor {
    offset: usize,
    line: usize,
    column: usize,
}

impl Default for Cursor {
    fn default() -> Self {
        Self {
            offset: 0,
            line: 1,
            column: 1,
        }
    }
}

impl Cursor {
    /// The 1-based line and column of byte `offset`, at or after the last
    /// one asked (carriage returns are not counted as columns).
    fn advance_to(&mut self, text: &str, offset: usize) -> (usize, usize) {
        for c in text[self.offset..offset].chars() {
            match c {
                '\n' => {
                    self.line += 1;
                    self.column = 1;
                }
                '\r' => {}
                _ => self.column += 1,
            }
        }
        self.offset = offset;
        (self.line, self.column)
    }
}

/// Finds every patient identifier in `text`, except those the author has
/// explicitly allowed.
///
/// A match is dropped when its normalised form equals the normalised form of
/// any entry in `allowed`, where normalising keeps only letters and digits
/// and uppercases them. So allowing `"999-123-4567"` also allows
/// `999 123 4567`, `999.123.4567` and `9991234567`.
#[must_use]
pub fn find_identifiers_allowing(text: &str, allowed: &[String]) -> Vec<IdentifierMatch> {
    let mut found = find_identifiers(text);
    if allowed.is_empty() || found.is_empty() {
        return found;
    }
    let allowed: Vec<String> = allowed.iter().map(|entry| normalise(entry)).collect();
    found.retain(|m| {
        let key = normalise(&m.text);
        !allowed.contains(&key)
    });
    found
}

/// Returns whether the tenth digit of an NHS (or CHI) number is the correct
/// modulus-11 check digit for the first nine.
///
/// `digits` holds digit values (`0..=9`), not ASCII characters; any value
/// above 9 makes the number invalid. The first nine digits are weighted 10
/// down to 2 and summed; the check digit is `11 - (sum % 11)`, where 11 means
/// 0 and 10 means the number is never issued (so always invalid).
#[must_use]
pub fn nhs_check_digit_valid(digits: &[u8; 10]) -> bool {
    if digits.iter().any(|&d| d > 9) {
        return false;
    }
    let sum: u32 = digits[..9]
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&d, weight)| u32::from(d) * weight)
        .sum();
    let check = match 11 - (sum % 11) {
        11 => 0,
        10 => return false,
        r => r,
    };
    u32::from(digits[9]) == check
}

/// Uppercases `value` and keeps only its letters and digits, for
/// allow-list matching.
fn normalise(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Whether the character starting at byte `end` (if any) is not alphanumeric.
fn followed_by_boundary(text: &str, end: usize) -> bool {
    match text.get(end..).and_then(|rest| rest.chars().next()) {
        Some(c) => !c.is_alphanumeric(),
        None => true,
    }
}

/// The digit value of the byte at `index`, if it is an ASCII digit.
fn digit_at(bytes: &[u8], index: usize) -> Option<u8> {
    match bytes.get(index) {
        Some(b) if b.is_ascii_digit() => Some(b - b'0'),
        _ => None,
    }
}

/// Reads `count` ASCII digits starting at byte `start` into
/// `out[at..at + count]`, returning whether they were all present.
fn read_digits(bytes: &[u8], start: usize, out: &mut [u8; 10], at: usize, count: usize) -> bool {
    for i in 0..count {
        match (digit_at(bytes, start + i), out.get_mut(at + i)) {
            (Some(d), Some(slot)) => *slot = d,
            _ => return false,
        }
    }
    true
}

/// Tries to read a ten-digit NHS/CHI-shaped number starting at `start`.
///
/// Returns the kind and the end byte offset when the shape, check digit (and,
/// for CHI, date) are valid. Boundaries are checked by the caller.
fn match_ten_digit(bytes: &[u8], start: usize) -> Option<(IdentifierKind, usize)> {
    let mut digits = [0u8; 10];
    if !read_digits(bytes, start, &mut digits, 0, 3) {
        return None;
    }

    let end = match bytes.get(start + 3) {
        Some(&sep @ (b' ' | b'-')) => {
            // Grouped 3-3-4 with the same single separator both times.
            let grouped = read_digits(bytes, start + 4, &mut digits, 3, 3)
                && bytes.get(start + 7) == Some(&sep)
                && read_digits(bytes, start + 8, &mut digits, 6, 4);
            if !grouped {
                return None;
            }
            start + 12
        }
        _ => {
            if !read_digits(bytes, start + 3, &mut digits, 3, 7) {
                return None;
            }
            start + 10
        }
    };

    if !nhs_check_digit_valid(&digits) {
        return None;
    }
    let kind = if is_ddmmyy(&digits) {
        IdentifierKind::ChiNumber
    } else {
        IdentifierKind::NhsNumber
    };
    Some((kind, end))
}

/// Whether the first six digits form a valid `DDMMYY` date. The century is
/// unknown, so 29 February is accepted for any year.
fn is_ddmmyy(digits: &[u8; 10]) -> bool {
    const DAYS_IN_MONTH: [u8; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let day = digits[0] * 10 + digits[1];
    let month = digits[2] * 10 + digits[3];
    match usize::from(month)
        .checked_sub(1)
        .and_then(|m| DAYS_IN_MONTH.get(m))
    {
        Some(&max_day) => (1..=max_day).contains(&day),
        None => false,
    }
}

/// Tries to read a prison number (`A1234BC`) starting at `start`, returning
/// its end byte offset. Boundaries are checked by the caller.
fn match_prison_number(bytes: &[u8], start: usize) -> Option<(IdentifierKind, usize)> {
    let upper = |i: usize| bytes.get(start + i).is_some_and(u8::is_ascii_uppercase);
    let digit = |i: usize| bytes.get(start + i).is_some_and(u8::is_ascii_digit);
    let shape = upper(0) && (1..5).all(digit) && upper(5) && upper(6);
    shape.then_some((IdentifierKind::PrisonNumber, start + 7))
}

#[cfg(test)]
#[path = "../tests/support/disguises.rs"]
mod disguises;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Completes nine digits with the valid check digit, if one exists.
    fn with_check_digit(nine: [u8; 9]) -> Option<[u8; 10]> {
        (0..=9).find_map(|check| {
            let mut digits = [0u8; 10];
            digits[..9].copy_from_slice(&nine);
            digits[9] = check;
            nhs_check_digit_valid(&digits).then_some(digits)
        })
    }

    /// A valid 999-range (never issued) number: `999` + six given digits,
    /// adjusting the ninth digit if needed so a valid check digit exists.
    fn valid_999(six: [u8; 6]) -> [u8; 10] {
        let mut nine = [9, 9, 9, six[0], six[1], six[2], six[3], six[4], six[5]];
        for ninth in 0..=9 {
            nine[8] = (six[5] + ninth) % 10;
            if let Some(digits) = with_check_digit(nine) {
                return digits;
            }
        }
        unreachable!("some ninth digit always yields a valid check digit")
    }

    /// Formats digits with an optional 3-3-4 separator.
    fn format(digits: &[u8; 10], sep: Option<char>) -> String {
        let mut out = String::new();
        for (i, d) in digits.iter().enumerate() {
            if let Some(sep) = sep
                && (i == 3 || i == 6)
            {
                out.push(sep);
            }
            out.push(char::from(b'0' + d));
        }
        out
    }

    /// The same number with a wrong check digit.
    fn with_wrong_check(digits: &[u8; 10]) -> [u8; 10] {
        let mut wrong = *digits;
        wrong[9] = (wrong[9] + 1) % 10;
        assert!(!nhs_check_digit_valid(&wrong));
        wrong
    }

    fn sample() -> [u8; 10] {
        valid_999([1, 2, 3, 4, 5, 6])
    }

    #[test]
    fn check_digit_known_values() {
        // 999 000 001: sum 245, 245 % 11 = 3, check 11 - 3 = 8.
        assert!(nhs_check_digit_valid(&[9, 9, 9, 0, 0, 0, 0, 0, 1, 8]));
        assert!(!nhs_check_digit_valid(&[9, 9, 9, 0, 0, 0, 0, 0, 1, 7]));
        // 999 000 005: sum 253 = 23 * 11, so 11 - 0 = 11 means check 0.
        assert!(nhs_check_digit_valid(&[9, 9, 9, 0, 0, 0, 0, 0, 5, 0]));
        // 999 000 000: sum 243, 243 % 11 = 1, check 10: never issued.
        for check in 0..=9 {
            assert!(!nhs_check_digit_valid(&[9, 9, 9, 0, 0, 0, 0, 0, 0, check]));
        }
        // Out-of-range digit values are invalid, never a panic.
        assert!(!nhs_check_digit_valid(&[255; 10]));
    }

    #[test]
    fn labels_and_display() {
        assert_eq!(IdentifierKind::NhsNumber.label(), "NHS number");
        assert_eq!(IdentifierKind::ChiNumber.to_string(), "CHI number");
        assert_eq!(IdentifierKind::PrisonNumber.to_string(), "prison number");
    }

    #[test]
    fn contiguous_form_found() {
        let number = format(&sample(), None);
        let text = format!("Patient {number} seen.");
        let found = find_identifiers(&text);
        assert_eq!(
            found,
            vec![IdentifierMatch {
                kind: IdentifierKind::NhsNumber,
                text: number,
                line: 1,
                column: 9,
                byte_offset: 8,
            }]
        );
    }

    #[test]
    fn spaced_and_hyphen_forms_found() {
        for sep in [' ', '-'] {
            let number = format(&sample(), Some(sep));
            let text = format!("({number})");
            let found = find_identifiers(&text);
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].text, number);
            assert_eq!(found[0].kind, IdentifierKind::NhsNumber);
            assert_eq!(
                (found[0].line, found[0].column, found[0].byte_offset),
                (1, 2, 1)
            );
        }
    }

    #[test]
    fn mixed_or_doubled_separators_are_found() {
        let digits = sample();
        let plain = format(&digits, None);
        let (a, b, c) = (&plain[..3], &plain[3..6], &plain[6..]);
        for text in [
            format!("{a} {b}-{c}"),
            format!("{a}-{b} {c}"),
            format!("{a}  {b}  {c}"),
            format!("{a}--{b}--{c}"),
            format!("{a}{b} {c}"),
        ] {
            let found = find_identifiers(&text);
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].text, text, "reported as written");
        }
    }

    #[test]
    fn disguised_numbers_are_found_however_written() {
        let plain = format(&sample(), None);
        let (a, b, c) = (&plain[..3], &plain[3..6], &plain[6..]);
        let all = super::disguises::disguises(&plain);
        assert_eq!(all.len(), super::disguises::DISGUISES);
        for text in all {
            assert!(!find_identifiers(&text).is_empty(), "not found in {text:?}");
        }
        // Part of a longer run of groups is not one.
        assert!(find_identifiers(&format!("11111111111.{a}.{b}.{c}")).is_empty());
        let found = find_identifiers(&format!("x\n\ny {a}.{b}.{c} and\n z {a}/{b}/{c}"));
        let at: Vec<(usize, usize)> = found.iter().map(|m| (m.line, m.column)).collect();
        assert_eq!(at, [(3, 3), (4, 4)]);
    }

    #[test]
    fn ordinary_numbers_are_not_taken_for_identifiers() {
        for text in [
            "Call 0300 123 4567 or +44 300 123 4567, or 01632 960 001.",
            "Dates: 2026-01-31, 31/01/2026, 31.01.2026 and 2026/01/31 10:30.",
            "Version 1.2.3.4, policy 12.4.1, section 3.2.1.1.",
            "Doses of 10 mg, 20 mg and 30 mg; 1,234,567 tablets; £1,250.00.",
            "Ward 3, bed 12; room 1024-A; extension 4567.",
            "Lines 1-10, 11-20 and 21-30 of table 4.",
            "Coordinates 51.5072, -0.1276; ISO 8601; RFC 3339.",
        ] {
            assert!(
                find_identifiers(text).is_empty(),
                "{text}: {:?}",
                find_identifiers(text)
            );
        }
    }

    #[test]
    fn position_after_multibyte_on_line_three() {
        let number = format(&sample(), Some(' '));
        let text = format!("first line\r\nsécond — ligne\nπ→ «{number}» end");
        let found = find_identifiers(&text);
        assert_eq!(found.len(), 1);
        let m = &found[0];
        assert_eq!(m.line, 3);
        // π, →, space, « then the number.
        assert_eq!(m.column, 5);
        assert_eq!(m.byte_offset, text.find(&number).unwrap());
        assert_eq!(&text[m.byte_offset..m.byte_offset + m.text.len()], number);
    }

    #[test]
    fn carriage_return_is_not_a_column() {
        let number = format(&sample(), None);
        let text = format!("a\r\n\rx {number}");
        let found = find_identifiers(&text);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].line, found[0].column), (2, 3));
    }

    #[test]
    fn invalid_check_digit_ignored() {
        let wrong = with_wrong_check(&sample());
        for sep in [None, Some(' '), Some('-')] {
            let text = format!("NHS: {}", format(&wrong, sep));
            assert!(find_identifiers(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn longer_digit_runs_ignored() {
        let number = format(&sample(), None);
        for text in [
            format!("{number}1"),
            format!("1{number}"),
            format!("12{number}34"),
            format!("{}1", format(&sample(), Some(' '))),
        ] {
            assert!(find_identifiers(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn a_number_next_to_letters_is_found() {
        let number = format(&sample(), None);
        for text in [
            format!("ref{number}"),
            format!("{number}x"),
            format!("é{number}"),
            format!("{number}ß"),
        ] {
            let found = find_identifiers(&text);
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].text, number);
        }
    }

    #[test]
    fn dates_and_phone_numbers_ignored() {
        for text in [
            "Reviewed 2026-01-31 by the team.",
            "Call 01632 960 123 or 0163 296 0123 4.",
            "+44 20 7946 0958",
            "Version 1.2.3, 2026/01/31",
        ] {
            assert!(find_identifiers(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn chi_number_reported_as_chi() {
        // 01 01 99 (1 January, year 99) followed by searched digits.
        let chi = (0..100u8)
            .find_map(|n| with_check_digit([0, 1, 0, 1, 9, 9, 9, n / 10, n % 10]))
            .unwrap();
        assert!(is_ddmmyy(&chi));
        let text = format!("CHI {}", format(&chi, None));
        let found = find_identifiers(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, IdentifierKind::ChiNumber);
        assert_eq!(found[0].byte_offset, 4);

        // 29 February is accepted whatever the year; 30 February is not.
        let leap = (0..100u8)
            .find_map(|n| with_check_digit([2, 9, 0, 2, 0, 1, 9, n / 10, n % 10]))
            .unwrap();
        assert_eq!(
            find_identifiers(&format(&leap, Some(' ')))[0].kind,
            IdentifierKind::ChiNumber
        );
        let bad_date = (0..100u8)
            .find_map(|n| with_check_digit([3, 0, 0, 2, 0, 1, 9, n / 10, n % 10]))
            .unwrap();
        assert_eq!(
            find_identifiers(&format(&bad_date, None))[0].kind,
            IdentifierKind::NhsNumber
        );
    }

    #[test]
    fn date_validation() {
        let with = |d: [u8; 6]| {
            let mut digits = [0u8; 10];
            digits[..6].copy_from_slice(&d);
            is_ddmmyy(&digits)
        };
        assert!(with([3, 1, 1, 2, 9, 9]));
        assert!(with([3, 0, 0, 4, 0, 0]));
        assert!(!with([3, 1, 0, 4, 0, 0]));
        assert!(!with([0, 0, 0, 1, 0, 0]));
        assert!(!with([0, 1, 0, 0, 0, 0]));
        assert!(!with([0, 1, 1, 3, 0, 0]));
        assert!(!with([9, 9, 9, 1, 2, 3]));
    }

    #[test]
    fn prison_number_found() {
        let text = "Transferred:\nA1234BC, then (Z9876XY).";
        let found = find_identifiers(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].kind, IdentifierKind::PrisonNumber);
        assert_eq!(found[0].text, "A1234BC");
        assert_eq!(
            (found[0].line, found[0].column, found[0].byte_offset),
            (2, 1, 13)
        );
        assert_eq!(found[1].text, "Z9876XY");
        assert_eq!((found[1].line, found[1].column), (2, 16));
    }

    #[test]
    fn disguised_prison_numbers_are_found() {
        for text in [
            "Transferred A\u{200b}1234BC today",
            "A1234**BC**",
            "**A**1234BC",
            "&#65;1234BC",
            "A&#49;234BC",
            "\u{ff21}\u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff22}\u{ff23}",
            "A12\u{ad}34BC",
            "`A1234BC`",
        ] {
            let found = find_identifiers(text);
            assert!(
                found.iter().any(|m| m.kind == IdentifierKind::PrisonNumber),
                "not found in {text:?}"
            );
        }
    }

    #[test]
    fn prison_number_lookalikes_ignored() {
        for text in [
            "a1234bc", "A1234bc", "a1234BC", "AB1234CD", "A1234BCD", "XA1234BC", "A12345BC",
            "A123BC", "A1234B", "A1234BC9",
        ] {
            assert!(find_identifiers(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn allow_list_drops_only_allowed() {
        let first = sample();
        let second = valid_999([6, 5, 4, 3, 2, 1]);
        assert_ne!(first, second);
        let text = format!(
            "Example {} and real {} and A1234BC.",
            format(&first, Some(' ')),
            format(&second, None)
        );
        assert_eq!(find_identifiers(&text).len(), 3);

        // Allowed in a different spacing form still matches.
        let allowed = vec![format(&first, Some('-')), "a 1234-bc".to_owned()];
        let found = find_identifiers_allowing(&text, &allowed);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].text, format(&second, None));

        assert_eq!(find_identifiers_allowing(&text, &[]).len(), 3);
        let unrelated = vec![format(&valid_999([1, 1, 1, 1, 1, 1]), None)];
        assert_eq!(find_identifiers_allowing(&text, &unrelated).len(), 3);
    }

    #[test]
    fn empty_and_truncated_inputs() {
        assert!(find_identifiers("").is_empty());
        let number = format(&sample(), Some(' '));
        for end in 0..number.len() {
            assert!(find_identifiers(&number[..end]).is_empty());
        }
        assert!(find_identifiers("A1234B").is_empty());
    }

    /// Line and column of byte `offset` computed independently of the scanner.
    fn expected_position(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset];
        let line = 1 + before.matches('\n').count();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = 1 + before[line_start..].chars().filter(|&c| c != '\r').count();
        (line, column)
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = find_identifiers(&text);
        }

        #[test]
        fn never_panics_on_identifier_like_text(text in "[0-9A-Za-z \\-\r\n€é]{0,80}") {
            for m in find_identifiers(&text) {
                prop_assert_eq!(&text[m.byte_offset..m.byte_offset + m.text.len()], m.text.as_str());
                prop_assert_eq!((m.line, m.column), expected_position(&text, m.byte_offset));
            }
        }

        #[test]
        fn embedded_valid_number_is_found(
            prefix in any::<String>(),
            suffix in any::<String>(),
            six in proptest::array::uniform6(0u8..10),
            sep in proptest::option::of(prop_oneof![Just(' '), Just('-')]),
            before in prop_oneof![Just(" "), Just("\n"), Just("\r\n"), Just("("), Just(": "), Just("—"), Just("-"), Just("\t")],
            after in prop_oneof![Just(" "), Just("\n"), Just(")"), Just("."), Just(", "), Just("—"), Just("-")],
        ) {
            let number = format(&valid_999(six), sep);
            let text = format!("{prefix}{before}{number}{after}{suffix}");
            let offset = prefix.len() + before.len();
            let found = find_identifiers(&text);
            let m = found.iter().find(|m| m.byte_offset == offset);
            prop_assert!(m.is_some(), "not found in {:?}", text);
            let m = m.unwrap();
            prop_assert_eq!(m.kind, IdentifierKind::NhsNumber);
            prop_assert_eq!(&m.text, &number);
            prop_assert_eq!((m.line, m.column), expected_position(&text, offset));
        }
    }
}
