//! 行政区划 administrative regions: codes, levels and village types.
//!
//! Codes are the statistical division codes (统计用区划代码) at their natural
//! length — 2 (province), 4 (city), 6 (county), 9 (township), 12 (village) —
//! so a parent's code is a prefix of every descendant's. That prefix property
//! is what region scopes and descendant counts rely on.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// 五级 the five administrative levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    Province,
    City,
    County,
    Township,
    Village,
}

impl RegionLevel {
    pub const ALL: [RegionLevel; 5] = [Self::Province, Self::City, Self::County, Self::Township, Self::Village];

    pub fn code_len(self) -> usize {
        match self {
            Self::Province => 2,
            Self::City => 4,
            Self::County => 6,
            Self::Township => 9,
            Self::Village => 12,
        }
    }

    fn from_code_len(len: usize) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code_len() == len)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Province => "province",
            Self::City => "city",
            Self::County => "county",
            Self::Township => "township",
            Self::Village => "village",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The level directly below, if any.
    pub fn child(self) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code_len() > self.code_len())
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Province => "省",
            Self::City => "市",
            Self::County => "县（区）",
            Self::Township => "乡镇（街道）",
            Self::Village => "村（社区）",
        }
    }
}

/// 统计用区划代码 a region code in its natural length.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RegionCode(String);

impl RegionCode {
    /// Parses a code of 2, 4, 6, 9 or 12 digits as written. Zero-padded forms
    /// (`360000`, `360100`) are valid codes here too; which region they name is
    /// settled against the stored tree by [`RegionCode::lookup_candidates`],
    /// because real codes end in zeros as well (东莞市 441900 is a county-level
    /// unit under city 4419).
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let s = input.trim();
        let ok = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && RegionLevel::from_code_len(s.len()).is_some()
            && !s.starts_with("00");
        if !ok {
            return Err(CoreError::malformed(
                "invalid_region_code",
                format!("region code {input:?} must be 2, 4, 6, 9 or 12 digits"),
            ));
        }
        Ok(Self(s.to_string()))
    }

    /// The codes this one may stand for, most literal first: itself, then the
    /// forms with zero padding removed (`360100` → `3601`, `360000` → `36`).
    pub fn lookup_candidates(&self) -> Vec<RegionCode> {
        let mut out = vec![self.clone()];
        let mut code = self.0.clone();
        loop {
            let shorter = match code.len() {
                12 if code.ends_with("000") => 9,
                9 if code.ends_with("000") => 6,
                6 if code.ends_with("00") => 4,
                4 if code.ends_with("00") => 2,
                _ => break,
            };
            code.truncate(shorter);
            if code.starts_with("00") {
                break;
            }
            out.push(Self(code.clone()));
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn level(&self) -> RegionLevel {
        RegionLevel::from_code_len(self.0.len()).expect("validated on construction")
    }

    pub fn parent(&self) -> Option<RegionCode> {
        let len = self.0.len();
        RegionLevel::ALL
            .into_iter()
            .rev()
            .map(RegionLevel::code_len)
            .find(|&l| l < len)
            .map(|l| Self(self.0[..l].to_string()))
    }

    /// Ancestors from the province down to the parent.
    pub fn ancestors(&self) -> Vec<RegionCode> {
        let mut out = Vec::new();
        let mut cur = self.parent();
        while let Some(c) = cur {
            cur = c.parent();
            out.push(c);
        }
        out.reverse();
        out
    }

    /// True when `other` is this region or lies below it.
    pub fn covers(&self, other: &RegionCode) -> bool {
        other.0.starts_with(&self.0)
    }

    /// Half-open key range `[lo, hi)` holding this code and all descendants:
    /// `:` sorts right after `9`, so it bounds every digit string with this prefix.
    pub fn subtree_range(&self) -> (String, String) {
        (self.0.clone(), format!("{}:", self.0))
    }

    /// The 6-digit form used by boundary files and many other systems.
    pub fn six_digit(&self) -> String {
        if self.0.len() >= 6 {
            self.0[..6].to_string()
        } else {
            format!("{:0<6}", self.0)
        }
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RegionCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Village classes of the rural revitalisation plan (乡村振兴战略规划 村庄分类).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VillageType {
    /// 集聚提升类
    Agglomeration,
    /// 城郊融合类
    Suburban,
    /// 特色保护类
    Characteristic,
    /// 搬迁撤并类
    Relocation,
}

impl VillageType {
    pub const ALL: [VillageType; 4] = [
        Self::Agglomeration,
        Self::Suburban,
        Self::Characteristic,
        Self::Relocation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agglomeration => "agglomeration",
            Self::Suburban => "suburban",
            Self::Characteristic => "characteristic",
            Self::Relocation => "relocation",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            CoreError::invalid(
                "invalid_village_type",
                format!("village_type {s:?} is not one of agglomeration, suburban, characteristic, relocation"),
            )
        })
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Agglomeration => "集聚提升类",
            Self::Suburban => "城郊融合类",
            Self::Characteristic => "特色保护类",
            Self::Relocation => "搬迁撤并类",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Self::Agglomeration => "Agglomeration and upgrading",
            Self::Suburban => "Suburban integration",
            Self::Characteristic => "Characteristic protection",
            Self::Relocation => "Relocation and merger",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_forms_offer_shorter_candidates() {
        for (input, want) in [
            ("36", vec!["36"]),
            ("360000", vec!["360000", "3600", "36"]),
            ("360100", vec!["360100", "3601"]),
            ("441900", vec!["441900", "4419"]),
            ("360102", vec!["360102"]),
            ("360102000000", vec!["360102000000", "360102000", "360102"]),
            ("360102002001", vec!["360102002001"]),
        ] {
            let got: Vec<String> = RegionCode::parse(input)
                .unwrap()
                .lookup_candidates()
                .iter()
                .map(|c| c.to_string())
                .collect();
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn malformed_codes_are_rejected() {
        for bad in [
            "",
            "3",
            "361",
            "36010",
            "3601020021",
            "abc",
            "36x1",
            "00",
            "000000",
            "3601020020011",
            " 3 6",
        ] {
            let err = RegionCode::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_region_code", "{bad}");
        }
    }

    #[test]
    fn levels_parents_and_scope() {
        let v = RegionCode::parse("360102002001").unwrap();
        assert_eq!(v.level(), RegionLevel::Village);
        let chain: Vec<_> = v.ancestors().iter().map(|c| c.to_string()).collect();
        assert_eq!(chain, ["36", "3601", "360102", "360102002"]);
        let county = RegionCode::parse("360102").unwrap();
        assert!(county.covers(&v));
        assert!(county.covers(&county));
        assert!(!RegionCode::parse("360103").unwrap().covers(&v));
        assert!(!v.covers(&county));
        assert_eq!(RegionCode::parse("36").unwrap().parent(), None);
    }

    #[test]
    fn subtree_range_bounds_exactly_the_descendants() {
        let (lo, hi) = RegionCode::parse("3601").unwrap().subtree_range();
        for inside in ["3601", "360102", "360199999999"] {
            assert!(lo.as_str() <= inside && inside < hi.as_str(), "{inside}");
        }
        for outside in ["36", "3602", "360", "3600999"] {
            assert!(!(lo.as_str() <= outside && outside < hi.as_str()), "{outside}");
        }
    }

    #[test]
    fn village_type_values() {
        for t in VillageType::ALL {
            assert_eq!(VillageType::parse(t.as_str()).unwrap(), t);
        }
        assert_eq!(VillageType::parse("urban").unwrap_err().code(), "invalid_village_type");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn parse_never_panics_and_accepts_only_code_lengths(s in "\\PC{0,16}") {
                if let Ok(c) = RegionCode::parse(&s) {
                    prop_assert!([2, 4, 6, 9, 12].contains(&c.as_str().len()));
                    prop_assert!(c.as_str().bytes().all(|b| b.is_ascii_digit()));
                }
            }

            #[test]
            fn ancestors_are_prefixes_one_level_apart(s in "[1-9][0-9]{11}") {
                let v = RegionCode::parse(&s).unwrap();
                let chain = v.ancestors();
                prop_assert_eq!(chain.len(), 4);
                for (a, level) in chain.iter().zip(RegionLevel::ALL) {
                    prop_assert_eq!(a.level(), level);
                    prop_assert!(a.covers(&v));
                    let (lo, hi) = a.subtree_range();
                    prop_assert!(lo.as_str() <= v.as_str() && v.as_str() < hi.as_str());
                }
            }

            #[test]
            fn lookup_candidates_shrink_to_valid_codes(s in "[1-9][0-9]{1}(00|[0-9]{2})(00|[0-9]{2})(000|[0-9]{3})?(000|[0-9]{3})?") {
                if let Ok(c) = RegionCode::parse(&s) {
                    let cands = c.lookup_candidates();
                    prop_assert_eq!(&cands[0], &c);
                    for w in cands.windows(2) {
                        prop_assert!(w[1].as_str().len() < w[0].as_str().len());
                        prop_assert!(w[0].as_str().starts_with(w[1].as_str()));
                        prop_assert!(w[0].as_str()[w[1].as_str().len()..].bytes().all(|b| b == b'0'));
                    }
                }
            }
        }
    }
}
