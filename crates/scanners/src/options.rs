//! Typed access to a scan's JSON options, so every adapter rejects unknown names and bad
//! values with the same messages.

use std::time::Duration;

use scanplane_core::duration::parse_duration;
use scanplane_core::target::{parse_port_list, PortRange};
use serde_json::{Map, Value};

use crate::error::ValidationError;

/// A scan's options, checked against the names a scanner understands.
pub(crate) struct Options<'a> {
    scanner: &'a str,
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Options<'a> {
    /// Accepts `null` (no options) or an object whose keys are all in `known`.
    pub(crate) fn parse(
        scanner: &'a str,
        value: &'a Value,
        known: &[&str],
    ) -> Result<Self, ValidationError> {
        let map = match value {
            Value::Null => None,
            Value::Object(m) => Some(m),
            other => {
                return Err(ValidationError::OptionsNotObject {
                    scanner: scanner.to_string(),
                    got: type_name(other).to_string(),
                })
            }
        };
        let opts = Options { scanner, map };
        if let Some(m) = map {
            for key in m.keys() {
                if !known.contains(&key.as_str()) {
                    let reason = if known.is_empty() {
                        "unknown option; this scanner takes no options".to_string()
                    } else {
                        format!("unknown option; known options are {}", known.join(", "))
                    };
                    return Err(opts.error(key, reason));
                }
            }
        }
        Ok(opts)
    }

    pub(crate) fn error(&self, option: &str, reason: impl Into<String>) -> ValidationError {
        ValidationError::Option {
            scanner: self.scanner.to_string(),
            option: option.to_string(),
            reason: reason.into(),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(name)).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<&'a str>, ValidationError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => {
                Err(self.error(name, format!("expected a string, got {}", type_name(other))))
            }
        }
    }

    /// Reads a whole number in `min..=max`; a numeric string is accepted too because
    /// options often arrive from query strings and YAML.
    pub(crate) fn integer(
        &self,
        name: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, ValidationError> {
        let n = match self.get(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(self.error(name, format!("expected a whole number from {min} to {max}"))),
        }
    }

    pub(crate) fn boolean(&self, name: &str) -> Result<Option<bool>, ValidationError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(other) => Err(self.error(
                name,
                format!("expected true or false, got {}", type_name(other)),
            )),
        }
    }

    /// Reads a duration written like `2s` or `500ms`, bounded so that a typo cannot stall
    /// a scan for hours.
    pub(crate) fn duration(
        &self,
        name: &str,
        max: Duration,
    ) -> Result<Option<Duration>, ValidationError> {
        let Some(text) = self.string(name)? else {
            return Ok(None);
        };
        let d = parse_duration(text).map_err(|e| self.error(name, e.to_string()))?;
        if d.is_zero() || d > max {
            return Err(self.error(
                name,
                format!("must be more than 0 and at most {}s", max.as_secs()),
            ));
        }
        Ok(Some(d))
    }

    pub(crate) fn ports(&self, name: &str) -> Result<Option<Vec<PortRange>>, ValidationError> {
        match self.string(name)? {
            None => Ok(None),
            Some(text) => parse_port_list(text)
                .map(Some)
                .map_err(|e| self.error(name, e.to_string())),
        }
    }

    /// Reads a comma-separated list whose items must all be in `allowed`.
    pub(crate) fn word_list(
        &self,
        name: &str,
        allowed: &[&str],
    ) -> Result<Option<Vec<String>>, ValidationError> {
        let Some(text) = self.string(name)? else {
            return Ok(None);
        };
        let items: Vec<String> = text
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        for item in &items {
            if !allowed.contains(&item.as_str()) {
                return Err(self.error(
                    name,
                    format!("{item:?} is not one of {}", allowed.join(", ")),
                ));
            }
        }
        Ok(Some(items))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_unknown_names_and_bad_values_naming_the_option() {
        let v = json!({"bogus": 1});
        let e = Options::parse("tcp", &v, &["ports"])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(r#"scanner tcp: option "bogus": unknown option; known options are ports"#)
        );
        let v = json!({"ports": "22,x"});
        let o = Options::parse("tcp", &v, &["ports"]).unwrap();
        assert!(o
            .ports("ports")
            .unwrap_err()
            .to_string()
            .contains("\"ports\""));
        let v = json!({"n": 0, "d": "0s", "b": 3});
        let o = Options::parse("x", &v, &["n", "d", "b"]).unwrap();
        assert!(o.integer("n", 1, 10).is_err());
        assert!(o.duration("d", Duration::from_secs(5)).is_err());
        assert!(o.boolean("b").is_err());
        assert!(Options::parse("x", &json!([1]), &[]).is_err());
        assert!(Options::parse("x", &Value::Null, &[]).is_ok());
    }
}
