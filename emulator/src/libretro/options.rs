//! Core options ("variables"): what the core declared, the value each one has, and overrides
//! from the configuration. Pure; the C structs are decoded in `session`.

use std::collections::HashMap;
use std::ffi::{CStr, CString};

/// One declared option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionDef {
    /// Key the core asks for.
    pub key: String,
    /// Allowed values (empty = anything).
    pub values: Vec<String>,
    /// Value used when not overridden.
    pub default: String,
}

impl OptionDef {
    /// Parses a legacy `retro_variable` value: `"Description; first|second|third"` (the first
    /// value is the default).
    pub fn from_legacy(key: &str, spec: &str) -> Option<Self> {
        let (_, list) = spec.split_once("; ")?;
        let values: Vec<String> = list.split('|').map(str::to_owned).collect();
        let default = values.first()?.clone();
        Some(Self { key: key.to_owned(), values, default })
    }
}

/// Declared options with their current values.
#[derive(Debug, Default)]
pub struct OptionStore {
    overrides: HashMap<String, String>,
    values: HashMap<String, CString>,
    defs: Vec<OptionDef>,
    changed: bool,
}

impl OptionStore {
    /// A store applying `overrides` (key → value) to whatever the core declares.
    pub fn new(overrides: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { overrides: overrides.into_iter().collect(), ..Self::default() }
    }

    /// Replaces the declared options (cores declare them all at once).
    pub fn declare(&mut self, defs: Vec<OptionDef>) {
        self.values.clear();
        for def in &defs {
            let value = match self.overrides.get(&def.key) {
                Some(v) if def.values.is_empty() || def.values.contains(v) => v.clone(),
                Some(v) => {
                    tracing::warn!(key = %def.key, value = %v, "ignoring override: not an allowed value");
                    def.default.clone()
                }
                None => def.default.clone(),
            };
            if let Ok(c) = CString::new(value) {
                self.values.insert(def.key.clone(), c);
            }
        }
        self.defs = defs;
    }

    /// The declared options.
    pub fn definitions(&self) -> &[OptionDef] {
        &self.defs
    }

    /// The current value of `key` (stable address until the store changes).
    pub fn get(&self, key: &str) -> Option<&CStr> {
        self.values.get(key).map(CString::as_c_str)
    }

    /// Sets `key` (SET_VARIABLE from the core, or a runtime change). False if unknown.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        if !self.values.contains_key(key) {
            return false;
        }
        let Ok(c) = CString::new(value) else {
            return false;
        };
        self.values.insert(key.to_owned(), c);
        self.changed = true;
        true
    }

    /// Whether values changed since the last call (GET_VARIABLE_UPDATE).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_specs_default_to_the_first_value() {
        let d = OptionDef::from_legacy("nestopia_blargg_ntsc_filter", "Blargg NTSC filter; disabled|composite|svideo")
            .unwrap();
        assert_eq!(d.default, "disabled");
        assert_eq!(d.values, ["disabled", "composite", "svideo"]);
        assert!(OptionDef::from_legacy("k", "no separator").is_none());
    }

    #[test]
    fn overrides_apply_only_when_allowed() {
        let mut s = OptionStore::new([("a".to_owned(), "on".to_owned()), ("b".to_owned(), "bogus".to_owned())]);
        s.declare(vec![
            OptionDef { key: "a".into(), values: vec!["off".into(), "on".into()], default: "off".into() },
            OptionDef { key: "b".into(), values: vec!["x".into(), "y".into()], default: "y".into() },
            OptionDef { key: "c".into(), values: vec![], default: "z".into() },
        ]);
        assert_eq!(s.get("a").unwrap().to_str().unwrap(), "on");
        assert_eq!(s.get("b").unwrap().to_str().unwrap(), "y");
        assert_eq!(s.get("c").unwrap().to_str().unwrap(), "z");
        assert!(s.get("d").is_none());
        assert!(!s.take_changed());
        assert!(s.set("c", "w"));
        assert!(!s.set("nope", "w"));
        assert!(s.take_changed());
        assert!(!s.take_changed());
        assert_eq!(s.get("c").unwrap().to_str().unwrap(), "w");
    }
}
