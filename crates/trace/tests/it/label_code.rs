//! Pesticide label code (农药标签二维码) tests: valid codes, every error with
//! its position, the QR URL forms, and properties over generated input.

use proptest::prelude::*;
use serde_json::json;
use shuxiang_trace::label_code::{
    LabelCode, LabelCodeError, LabelCodeErrorKind, ProductionType, RegistrationCategory, parse_label_code,
    parse_label_qr,
};

const VALID: &str = "11800011001123456789012345678901";

fn error(code: &str) -> LabelCodeError {
    parse_label_code(code).expect_err(code)
}

#[test]
fn parses_the_fields_of_a_valid_code() {
    let code = parse_label_code(VALID).unwrap();
    assert_eq!(code.category(), RegistrationCategory::Pesticide);
    assert_eq!(code.registration_suffix(), "180001");
    assert_eq!(code.production_type(), ProductionType::HolderProduced);
    assert_eq!(code.specification(), "001");
    assert_eq!(code.serial(), "123456789012345678901");
    assert_eq!(code.to_string(), VALID);
    assert_eq!(VALID.parse::<LabelCode>().unwrap(), code);

    let other = parse_label_code("26543213999000000000000000000000").unwrap();
    assert_eq!(other.category(), RegistrationCategory::Hygiene);
    assert_eq!(other.production_type(), ProductionType::ContractRepackaged);
    assert_eq!(other.specification(), "999");
    let temporary = parse_label_code("30000012010000000000000000000001").unwrap();
    assert_eq!(temporary.category(), RegistrationCategory::Temporary);
    assert_eq!(temporary.production_type(), ProductionType::ContractManufactured);
}

#[test]
fn serialises_the_parsed_fields() {
    let code = parse_label_code(VALID).unwrap();
    assert_eq!(
        serde_json::to_value(&code).unwrap(),
        json!({
            "category": "PD",
            "registration_suffix": "180001",
            "production_type": "holder_produced",
            "specification": "001",
            "serial": "123456789012345678901",
        })
    );
    let other = parse_label_code("33000012010000000000000000000001").unwrap();
    let value = serde_json::to_value(&other).unwrap();
    assert_eq!(value["category"], "LS");
    assert_eq!(value["production_type"], "contract_manufactured");
}

#[test]
fn matches_registration_numbers_by_prefix_and_last_six_digits() {
    let code = parse_label_code(VALID).unwrap();
    assert!(code.matches_registration_number("PD20180001"));
    assert!(code.matches_registration_number(" pd20180001 "));
    assert!(!code.matches_registration_number("PD20180002"));
    assert!(!code.matches_registration_number("WP20180001"));
    assert!(!code.matches_registration_number("PD80001"));
    assert!(!code.matches_registration_number("PD2018-0001"));
    assert!(!code.matches_registration_number(""));
    let hygiene = parse_label_code("21800011001123456789012345678901").unwrap();
    assert!(hygiene.matches_registration_number("WP20180001"));
    let temporary = parse_label_code("31800011001123456789012345678901").unwrap();
    assert!(temporary.matches_registration_number("LS20180001"));
    assert!(temporary.matches_registration_number("WL20180001"));
    assert!(!temporary.matches_registration_number("PD20180001"));
}

#[test]
fn errors_name_the_failing_position() {
    let cases: &[(&str, usize, LabelCodeErrorKind)] = &[
        ("", 1, LabelCodeErrorKind::TooShort(0)),
        ("1180001100112345678901234567890", 32, LabelCodeErrorKind::TooShort(31)),
        ("118000110011234567890123456789012", 33, LabelCodeErrorKind::TooLong(33)),
        ("11800011001123456789012345678901 ", 33, LabelCodeErrorKind::TooLong(33)),
        (
            "1180001100112345678901234567890x1",
            32,
            LabelCodeErrorKind::NotADigit('x'),
        ),
        (
            "118000a1001123456789012345678901",
            7,
            LabelCodeErrorKind::NotADigit('a'),
        ),
        (
            "11800011001123456789012345678９01",
            30,
            LabelCodeErrorKind::NotADigit('９'),
        ),
        (
            " 1800011001123456789012345678901",
            1,
            LabelCodeErrorKind::NotADigit(' '),
        ),
        ("11a", 3, LabelCodeErrorKind::NotADigit('a')),
        (
            "01800011001123456789012345678901",
            1,
            LabelCodeErrorKind::UnknownCategory(0),
        ),
        (
            "41800011001123456789012345678901",
            1,
            LabelCodeErrorKind::UnknownCategory(4),
        ),
        (
            "11800014001123456789012345678901",
            8,
            LabelCodeErrorKind::UnknownProductionType(4),
        ),
        (
            "11800010001123456789012345678901",
            8,
            LabelCodeErrorKind::UnknownProductionType(0),
        ),
        (
            "11800011000123456789012345678901",
            9,
            LabelCodeErrorKind::ZeroSpecification,
        ),
        // The first failing position wins.
        (
            "91800019000123456789012345678901",
            1,
            LabelCodeErrorKind::UnknownCategory(9),
        ),
    ];
    for (code, position, kind) in cases {
        let e = error(code);
        assert_eq!((e.position, &e.kind), (*position, kind), "{code:?}: {e}");
        assert!(e.to_string().contains(&format!("position {position}")), "{e}");
    }
}

#[test]
fn reads_codes_from_qr_urls() {
    let want = parse_label_code(VALID).unwrap();
    for content in [
        VALID.to_owned(),
        format!("  {VALID}\r\n"),
        format!("http://www.icama.cn/query?code={VALID}"),
        format!("http://www.icama.cn/query?lang=zh&CODE={VALID}#top"),
        format!("https://example.gov.cn/t/{VALID}"),
        format!("https://example.gov.cn/t/{VALID}/"),
        format!("https://example.gov.cn/t/{VALID}?from=scan"),
        format!("https://example.gov.cn/t/00000?code={VALID}"),
    ] {
        assert_eq!(parse_label_qr(&content).as_ref(), Ok(&want), "{content}");
    }
    let e = parse_label_qr("https://example.gov.cn").unwrap_err();
    assert_eq!((e.position, e.kind), (1, LabelCodeErrorKind::NoCode));
    let e = parse_label_qr("https://example.gov.cn/t/?code=1180001100").unwrap_err();
    assert_eq!((e.position, e.kind), (11, LabelCodeErrorKind::TooShort(10)));
    let e = parse_label_qr("https://example.gov.cn/t/index.html").unwrap_err();
    assert_eq!((e.position, e.kind), (1, LabelCodeErrorKind::NotADigit('i')));
}

proptest! {
    #[test]
    fn parsing_never_panics(input in any::<String>()) {
        let _ = parse_label_code(&input);
        let _ = parse_label_qr(&input);
    }

    #[test]
    fn url_like_input_never_panics(input in "[0-9a-z:/?=&#. ]{0,50}") {
        let _ = parse_label_qr(&input);
        let _ = parse_label_qr(&format!("https://{input}"));
    }

    #[test]
    fn valid_codes_round_trip(
        category in 1u8..=3,
        suffix in "[0-9]{6}",
        production in 1u8..=3,
        specification in 1u16..=999,
        serial in "[0-9]{21}",
    ) {
        let text = format!("{category}{suffix}{production}{specification:03}{serial}");
        let code = parse_label_code(&text).unwrap();
        prop_assert_eq!(code.to_string(), text.clone());
        prop_assert_eq!(code.category().digit(), category);
        prop_assert_eq!(code.registration_suffix(), suffix.as_str());
        prop_assert_eq!(code.production_type().digit(), production);
        prop_assert_eq!(code.specification(), format!("{specification:03}"));
        prop_assert_eq!(code.serial(), serial.as_str());
        prop_assert_eq!(parse_label_qr(&format!("https://example.gov.cn/t/{text}")), Ok(code.clone()));
        prop_assert_eq!(parse_label_qr(&format!("http://www.icama.cn/q?code={text}")), Ok(code));
    }

    #[test]
    fn any_32_digits_parse_exactly_when_the_fields_are_known(text in "[0-9]{32}") {
        let b = text.as_bytes();
        let valid = (b'1'..=b'3').contains(&b[0]) && (b'1'..=b'3').contains(&b[7]) && &text[8..11] != "000";
        match parse_label_code(&text) {
            Ok(code) => {
                prop_assert!(valid);
                prop_assert_eq!(code.to_string(), text);
            }
            Err(e) => {
                prop_assert!(!valid);
                prop_assert!([1, 8, 9].contains(&e.position), "{}", e);
            }
        }
    }

    #[test]
    fn a_corrupted_position_is_reported(position in 0usize..32, c in "[^0-9]") {
        let mut chars: Vec<char> = VALID.chars().collect();
        chars[position] = c.chars().next().unwrap();
        let code: String = chars.into_iter().collect();
        let e = parse_label_code(&code).unwrap_err();
        prop_assert_eq!(e.position, position + 1);
        prop_assert_eq!(e.kind, LabelCodeErrorKind::NotADigit(c.chars().next().unwrap()));
    }
}
