//! `metric_relabel_configs` with Prometheus 2.42 semantics.
//!
//! A rule joins the values of `source_labels` with `separator`, matches the result against `regex`
//! (fully anchored), and then, by `action`: `replace` writes the expanded `replacement` to the
//! (expanded) `target_label`; `keep`/`drop` keep or drop the series; `hashmod` writes
//! `md5(value) % modulus`; `labelmap` copies every label whose *name* matches to the expanded
//! replacement; `labeldrop`/`labelkeep` remove labels by name; `lowercase`/`uppercase` write the
//! case-folded value; `keepequal`/`dropequal` compare the value with `target_label`'s.
//!
//! Rules run once per new series: the scraper caches their result per series text, so a steady
//! scrape never runs them.

use meshfed_model::{CompactString, Labels, LabelsBuilder};
use regex::Regex;
use serde::Deserialize;

#[cfg(test)]
mod tests;

/// What a rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Set `target_label` to the expanded `replacement` when `regex` matches.
    #[default]
    Replace,
    /// Drop the series unless `regex` matches.
    Keep,
    /// Drop the series when `regex` matches.
    Drop,
    /// Set `target_label` to `md5(value) % modulus`.
    HashMod,
    /// Copy labels whose name matches `regex` to the expanded `replacement`.
    LabelMap,
    /// Remove labels whose name matches `regex`.
    LabelDrop,
    /// Remove labels whose name does not match `regex`.
    LabelKeep,
    /// Set `target_label` to the lower-cased value.
    Lowercase,
    /// Set `target_label` to the upper-cased value.
    Uppercase,
    /// Drop the series unless the value equals `target_label`'s.
    KeepEqual,
    /// Drop the series when the value equals `target_label`'s.
    DropEqual,
}

/// One rule as written in YAML, with Prometheus' field names and defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelabelConfig {
    /// Labels whose values are joined to form the matched value.
    pub source_labels: Vec<String>,
    /// Joins the source values (default `;`).
    pub separator: String,
    /// Matched against the joined value (or label names); anchored at both ends. Default `(.*)`.
    pub regex: String,
    /// Label written by `replace`, `hashmod`, `lowercase`, `uppercase` (may use `$1`).
    pub target_label: String,
    /// Written by `replace`/`labelmap`; `$1`, `${1}`, `$name` refer to groups. Default `$1`.
    pub replacement: String,
    /// For `hashmod`.
    pub modulus: u64,
    /// What to do.
    pub action: RelabelAction,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: ";".into(),
            regex: "(.*)".into(),
            target_label: String::new(),
            replacement: "$1".into(),
            modulus: 0,
            action: RelabelAction::Replace,
        }
    }
}

/// A checked, compiled rule.
#[derive(Clone, Debug)]
pub struct RelabelRule {
    config: RelabelConfig,
    regex: Regex,
}

impl RelabelRule {
    /// Compiles and checks a rule as Prometheus does when loading its config.
    pub fn new(config: RelabelConfig) -> Result<Self, String> {
        let regex = Regex::new(&format!("^(?:{})$", config.regex))
            .map_err(|e| format!("invalid regex {:?}: {e}", config.regex))?;
        use RelabelAction::*;
        let needs_target = matches!(
            config.action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && config.target_label.is_empty() {
            return Err(format!(
                "relabel action {:?} requires target_label",
                config.action
            ));
        }
        if config.action == HashMod && config.modulus == 0 {
            return Err("relabel action hashmod requires a non-zero modulus".into());
        }
        if matches!(config.action, LabelDrop | LabelKeep)
            && (!config.source_labels.is_empty() || !config.target_label.is_empty())
        {
            return Err(format!(
                "relabel action {:?} takes only regex (no source_labels, target_label)",
                config.action
            ));
        }
        Ok(Self { config, regex })
    }

    /// Compiles a list of rules; the error names the failing rule.
    pub fn compile(configs: &[RelabelConfig]) -> Result<Vec<RelabelRule>, String> {
        configs
            .iter()
            .enumerate()
            .map(|(i, c)| Self::new(c.clone()).map_err(|e| format!("metric_relabel_configs[{i}]: {e}")))
            .collect()
    }
}

/// Applies `rules` in order; `None` when a rule dropped the series (or no label is left).
pub fn process(labels: Labels, rules: &[RelabelRule]) -> Option<Labels> {
    if rules.is_empty() {
        return Some(labels);
    }
    let mut b = labels.to_builder();
    for rule in rules {
        if !apply(&mut b, rule) {
            return None;
        }
    }
    let out = b.build();
    (!out.is_empty()).then_some(out)
}

fn apply(b: &mut LabelsBuilder, rule: &RelabelRule) -> bool {
    let c = &rule.config;
    let mut value = String::new();
    for (i, name) in c.source_labels.iter().enumerate() {
        if i > 0 {
            value.push_str(&c.separator);
        }
        value.push_str(b.get(name).unwrap_or(""));
    }
    use RelabelAction::*;
    match c.action {
        Keep => return rule.regex.is_match(&value),
        Drop => return !rule.regex.is_match(&value),
        KeepEqual => return b.get(&c.target_label).unwrap_or("") == value,
        DropEqual => return b.get(&c.target_label).unwrap_or("") != value,
        Replace => {
            let Some(caps) = rule.regex.captures(&value) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&c.target_label, &mut target);
            if !is_label_name(&target) {
                b.del(&c.target_label);
                return true;
            }
            let mut res = String::new();
            caps.expand(&c.replacement, &mut res);
            if res.is_empty() {
                b.del(&c.target_label);
            } else {
                b.set(target, res);
            }
        }
        Lowercase => {
            b.set(c.target_label.as_str(), value.to_lowercase());
        }
        Uppercase => {
            b.set(c.target_label.as_str(), value.to_uppercase());
        }
        HashMod => {
            let digest = md5(value.as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&digest[8..]);
            let m = u64::from_be_bytes(tail) % c.modulus;
            b.set(c.target_label.as_str(), m.to_string());
        }
        LabelMap => {
            let current = names_values(b);
            for (name, v) in current {
                if let Some(caps) = rule.regex.captures(&name) {
                    let mut new_name = String::new();
                    caps.expand(&c.replacement, &mut new_name);
                    b.set(new_name, v);
                }
            }
        }
        LabelDrop | LabelKeep => {
            let drop_on_match = c.action == LabelDrop;
            for (name, _) in names_values(b) {
                if rule.regex.is_match(&name) == drop_on_match {
                    b.del(&name);
                }
            }
        }
    }
    true
}

fn names_values(b: &LabelsBuilder) -> Vec<(CompactString, CompactString)> {
    b.clone()
        .build()
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the label names Prometheus 2.42 accepts.
pub fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// MD5 (RFC 1321), for `hashmod` only: it must match Prometheus' choice of hash bit for bit.
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15,
        21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: [u32; 64] = std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = input.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]])
        });
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, s) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
pub(crate) fn md5_for_test(input: &[u8]) -> [u8; 16] {
    md5(input)
}
