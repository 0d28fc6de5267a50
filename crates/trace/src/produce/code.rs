//! 追溯码 trace codes: what a consumer scans or types from a label.
//!
//! Sixteen characters of Crockford's base32 (digits and capital letters
//! without I, L, O, U, so nothing reads as another character): fifteen
//! random ones drawn from the first 31 symbols (74 bits — guessing one of
//! ten million issued codes is a one-in-2×10¹⁵ chance per try) and a check
//! character, a weighted sum modulo the prime 31, that catches any single
//! mistyped character and any swap of two neighbours. Shown in groups
//! of four (`7K3M-Q9T2-…`); dashes, spaces and lower case are accepted back.

use rand::Rng;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const RANDOM_LEN: usize = 15;
/// Random characters stay below this, so every difference between two of
/// them is invertible modulo it (the last symbol, Z, never appears).
const CHECK_MODULUS: u8 = 31;
pub const CODE_LEN: usize = RANDOM_LEN + 1;

/// A well-formed trace code, in its canonical form (16 capitals and digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceCode(String);

/// Why text is not a trace code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceCodeError {
    #[error("a trace code has {CODE_LEN} characters, not {0}")]
    Length(usize),
    #[error("character {position} ({found:?}) cannot appear in a trace code")]
    Character { position: usize, found: char },
    #[error("the check character does not match: a character is mistyped")]
    Check,
}

impl TraceCode {
    /// A new random code.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut digits = [0u8; CODE_LEN];
        for d in digits.iter_mut().take(RANDOM_LEN) {
            *d = rng.random_range(0..CHECK_MODULUS);
        }
        digits[RANDOM_LEN] = check_digit(&digits[..RANDOM_LEN]);
        Self(digits.iter().map(|d| ALPHABET[*d as usize] as char).collect())
    }

    /// Reads a code as printed or typed: groups separated by dashes or
    /// spaces, any case, and the look-alikes O→0, I/L→1.
    pub fn parse(text: &str) -> Result<Self, TraceCodeError> {
        let mut digits = Vec::with_capacity(CODE_LEN);
        for (i, c) in text.chars().filter(|c| *c != '-' && !c.is_whitespace()).enumerate() {
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            };
            let value = ALPHABET
                .iter()
                .position(|a| *a as char == c)
                .filter(|v| *v < CHECK_MODULUS as usize)
                .ok_or(TraceCodeError::Character {
                    position: i + 1,
                    found: c,
                })?;
            digits.push(value as u8);
        }
        if digits.len() != CODE_LEN {
            return Err(TraceCodeError::Length(digits.len()));
        }
        if check_digit(&digits[..RANDOM_LEN]) != digits[RANDOM_LEN] {
            return Err(TraceCodeError::Check);
        }
        Ok(Self(digits.iter().map(|d| ALPHABET[*d as usize] as char).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `7K3M-Q9T2-…` for labels and pages.
    pub fn grouped(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("ASCII"))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The code as an EPCIS identifier (an EPC in the events' lists).
    pub fn epc(&self) -> String {
        format!("urn:shuxiang:tc:{}", self.0)
    }
}

impl std::fmt::Display for TraceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Σ (position × value) modulo 31: with weights 1..15 and values below 31,
/// a single change alters the sum by weight × difference and a swap of
/// neighbours by the difference, neither a multiple of the prime 31.
fn check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u32 + 1) * (*d as u32))
        .sum();
    (sum % CHECK_MODULUS as u32) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_codes_parse_back_in_any_printed_form() {
        for _ in 0..200 {
            let code = TraceCode::generate();
            assert_eq!(code.as_str().len(), CODE_LEN);
            assert_eq!(TraceCode::parse(code.as_str()).unwrap(), code);
            assert_eq!(TraceCode::parse(&code.grouped()).unwrap(), code);
            assert_eq!(
                TraceCode::parse(&code.grouped().to_lowercase().replace('-', " ")).unwrap(),
                code
            );
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(TraceCode::parse("ABC"), Err(TraceCodeError::Length(3)));
        assert_eq!(
            TraceCode::parse("0123456789ABCDEU"),
            Err(TraceCodeError::Character {
                position: 16,
                found: 'U'
            })
        );
        // Z is in the alphabet but never issued.
        assert_eq!(
            TraceCode::parse("Z123456789ABCDEF"),
            Err(TraceCodeError::Character {
                position: 1,
                found: 'Z'
            })
        );
        let code = TraceCode::generate();
        assert!(code.epc().starts_with("urn:shuxiang:tc:"));
    }

    proptest! {
        #[test]
        fn any_single_mistyped_character_is_caught(pos in 0..CODE_LEN, replacement in 0u8..32) {
            let code = TraceCode::generate();
            let mut bytes = code.as_str().as_bytes().to_vec();
            prop_assume!(bytes[pos] != ALPHABET[replacement as usize]);
            bytes[pos] = ALPHABET[replacement as usize];
            let typed = String::from_utf8(bytes).unwrap();
            prop_assert!(TraceCode::parse(&typed).is_err(), "{} accepted for {}", typed, code);
        }

        #[test]
        fn swapping_two_different_neighbours_is_caught(pos in 0..RANDOM_LEN - 1) {
            let code = TraceCode::generate();
            let mut bytes = code.as_str().as_bytes().to_vec();
            prop_assume!(bytes[pos] != bytes[pos + 1]);
            bytes.swap(pos, pos + 1);
            let typed = String::from_utf8(bytes).unwrap();
            prop_assert!(TraceCode::parse(&typed).is_err(), "{} accepted for {}", typed, code);
        }
    }
}
