//! The ways of writing an NHS number that the identifier scanner must see
//! through: separators, prefixes, line breaks, invisible and formatting
//! characters, Markdown marks and escapes, HTML references, other scripts'
//! digits and compatibility forms. Shared by the scanner's own test and by
//! the node's receipt test, so both hold the same 34 cases.

/// How many ways [`disguises`] writes a number.
pub const DISGUISES: usize = 34;

/// `plain` (ten ASCII digits) written in each of [`DISGUISES`] ways.
pub fn disguises(plain: &str) -> Vec<String> {
    assert!(plain.len() == 10 && plain.bytes().all(|b| b.is_ascii_digit()));
    let (a, b, c) = (&plain[..3], &plain[3..6], &plain[6..]);
    let digit = |d: char| d.to_digit(10).unwrap_or(0);
    let shifted = |base: u32| -> String {
        plain
            .chars()
            .map(|d| char::from_u32(base + digit(d)).unwrap_or('?'))
            .collect()
    };
    let entity: String = plain
        .chars()
        .map(|d| format!("&#{};", u32::from(d)))
        .collect();
    let first = u32::from(plain.as_bytes()[0]);
    vec![
        format!("NHS{plain}"),
        format!("NHS no:{plain}."),
        format!("{a}.{b}.{c}"),
        format!("{a}/{b}/{c}"),
        format!("({a}) {b} {c}"),
        format!("{a} {b}\n{c}"),
        format!("{a}\n{b}\n{c}"),
        format!("{a} - {b} - {c}"),
        format!("{a}\u{2013}{b}\u{2013}{c}"),
        format!("{a}\u{200b}{b}\u{200b}{c}"),
        format!("{a}\u{ad}{b}{c}"),
        format!("{a}\u{feff}{b} {c}"),
        format!("{a}**{}**{}", &b[..1], &plain[4..]),
        format!("`{plain}`"),
        format!("{a}\\-{b}\\-{c}"),
        format!("_{a}_ {b} {c}"),
        format!("&#{first};{}", &plain[1..]),
        entity,
        format!("&#x{first:x};{}", &plain[1..]),
        format!("{a}&nbsp;{b}&nbsp;{c}"),
        format!("{a}&ZeroWidthSpace;{b}&#8203;{c}"),
        format!("{a}&thinsp;{b}&thinsp;{c}"),
        format!("{a}&ndash;{b}&ndash;{c}"),
        format!("{a}\u{2009}{b}\u{202f}{c}"),
        // Fullwidth digits.
        shifted(0xff10),
        format!("{a}\u{a0}{b}\u{a0}{c}"),
        format!("ref{plain}"),
        format!("{plain}x"),
        // Compatibility forms NFKC maps to digits: superscripts, circled,
        // mathematical bold.
        plain
            .chars()
            .map(|d| ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'][digit(d) as usize])
            .collect(),
        plain
            .chars()
            .map(|d| match d {
                '0' => '⓪',
                d => char::from_u32(0x245f + digit(d)).unwrap_or('?'),
            })
            .collect(),
        shifted(0x1d7ce),
        // Forms whose compatibility decomposition is more than one
        // character ("⒐" is "9."), and digits with combining marks.
        plain
            .chars()
            .map(|d| match d {
                '0' => '\u{1f100}',
                d => char::from_u32(0x2487 + digit(d)).unwrap_or('?'),
            })
            .collect(),
        plain.chars().flat_map(|d| [d, '\u{336}']).collect(),
        plain
            .chars()
            .flat_map(|d| [d, '\u{fe0f}', '\u{20e3}'])
            .collect(),
    ]
}
